import ByteSource
import ObjectStore
import VirtualZarr

/// Proves each variable's codec chain by decoding one of its stored chunks before the dataset
/// is served. A file's filter pipeline can name a codec its chunks were not written with (a
/// writer that lies, a corrupted file, a filter id reused by a plugin); every reader would then
/// fail on every chunk with a codec error, far from the mount that caused it. A variable whose
/// chunk does not decode is left out with a warning that names it, the file and the error.
///
/// One chunk per variable (the first stored one, usually the first file's, so most proofs share
/// one multi-range request): the combiner has already checked that every file shares the
/// variable's pipeline, and a request per variable per file would double a remote scan.
public enum CodecProof {
    /// A stored chunk above this is not read to prove its chain (the variable is kept): the
    /// proof must not cost more than a scan.
    public static let maxProofBytes: UInt64 = 64 << 20

    /// What to check for one array: the chunk to read and the size it must decode to.
    struct Trial: Sendable {
        var arrayIndex: Int
        var object: ObjectInfo
        var offset: UInt64
        var length: UInt64
        var decodedSize: Int
        var codecs: [Codec]
    }

    /// The arrays whose chain can be proven, each with its first stored chunk; pure.
    static func trials(_ dataset: VirtualDataset) -> [Trial] {
        var trials: [Trial] = []
        for (index, array) in dataset.arrays.enumerated() {
            // Arrays from imported references may carry codecs zarrmount does not decode;
            // regridded arrays are proven chunk by chunk as they are assembled.
            guard !array.codecs.isEmpty, array.regridding == nil,
                Codec.foreign(in: array.codecs) == nil
            else { continue }
            let elements = array.chunkShape.reduce(UInt64(1)) { $0.multipliedReportingOverflow(by: $1).partialValue }
            let (decoded, overflow) = elements.multipliedReportingOverflow(by: UInt64(array.dtype.itemSize))
            guard !overflow, decoded <= UInt64(Int.max) else { continue }
            var linear = array.manifest.nextStored(from: 0, before: array.manifest.count)
            while let current = linear {
                if case .reference(let object, let offset, let length) = array.manifest[current] {
                    if length <= maxProofBytes, Int(object) < dataset.objects.count {
                        trials.append(
                            Trial(
                                arrayIndex: index, object: dataset.objects[Int(object)], offset: offset, length: length,
                                decodedSize: Int(decoded), codecs: array.codecs))
                    }
                    break
                }
                linear = array.manifest.nextStored(from: current + 1, before: array.manifest.count)
            }
        }
        return trials
    }

    /// Why `stored` is not a chunk of `trial`'s chain, or nil when it decodes to the chunk's size.
    static func failure(of trial: Trial, stored: [UInt8]) -> String? {
        do {
            let decoded = try ChunkDecoder.decode(stored, pipeline: trial.codecs, decodedSize: trial.decodedSize, asZarrReaders: true)
            guard decoded.count == trial.decodedSize else {
                return "it decodes to \(decoded.count) bytes where a chunk holds \(trial.decodedSize)"
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Reads one chunk per variable, an object's chunks together (one multi-range request over
    /// HTTP; up to 32 objects at once), and leaves out every variable whose chunk does not
    /// decode. Errors reading a chunk are the store's and stop the scan.
    public static func prove(_ dataset: inout VirtualDataset, store: RemoteStore?, cache: ManifestCache? = nil) async throws {
        // Chains proven by an earlier scan of the same object versions are not read again.
        func proven(_ trial: Trial) -> Bool {
            guard let cache, let identity = trial.object.identity else { return false }
            return cache.isProven(url: trial.object.url, identity: identity, offset: trial.offset, length: trial.length, codecs: trial.codecs)
        }
        let trials = trials(dataset).filter { !proven($0) }
        guard !trials.isEmpty else { return }
        let reader = ObjectReader(store: store)
        var byObject: [String: [Int]] = [:]
        for (position, trial) in trials.enumerated() { byObject[trial.object.url, default: []].append(position) }
        let groups = byObject.values.map { $0.sorted { trials[$0].offset < trials[$1].offset } }
        var failures: [(Int, String)] = []
        try await withThrowingTaskGroup(of: [(Int, String?)].self) { group in
            var next = 0
            func launch() {
                let positions = groups[next]
                next += 1
                group.addTask {
                    let object = trials[positions[0]].object
                    let chunks = try await reader.read(
                        object.url, identity: object.identity,
                        ranges: positions.map { trials[$0].offset..<(trials[$0].offset + trials[$0].length) })
                    // One object usually holds every variable's trial (the first file's), so
                    // its chunks decode in parallel rather than one after another.
                    return await withTaskGroup(of: (Int, String?).self) { decoders in
                        for (position, stored) in zip(positions, chunks) {
                            decoders.addTask {
                                let trial = trials[position]
                                let failure = failure(of: trial, stored: stored)
                                if failure == nil, let cache, let identity = trial.object.identity {
                                    cache.markProven(
                                        url: trial.object.url, identity: identity, offset: trial.offset, length: trial.length, codecs: trial.codecs)
                                }
                                return (position, failure)
                            }
                        }
                        var results: [(Int, String?)] = []
                        for await result in decoders { results.append(result) }
                        return results
                    }
                }
            }
            while next < min(32, groups.count) { launch() }
            while let results = try await group.next() {
                for case let (position, failure?) in results { failures.append((position, failure)) }
                if next < groups.count { launch() }
            }
        }
        guard !failures.isEmpty else { return }
        var leftOut = Set<Int>()
        for (position, failure) in failures.sorted(by: { $0.0 < $1.0 }) {
            let trial = trials[position]
            let array = dataset.arrays[trial.arrayIndex]
            let chain = array.codecs.map { $0.numcodecsJSON["id"]?.stringValue ?? "?" }.joined(separator: ", ")
            dataset.warnings.append(
                "\(trial.object.url): \(array.path) left out: its chunk at byte \(trial.offset) (\(trial.length) bytes) does not decode with its filters (\(chain)): \(failure). Every read of it would fail; check the file with `zarrmount verify`, or leave it out with --drop-variables \(array.path)"
            )
            leftOut.insert(trial.arrayIndex)
        }
        dataset.arrays = dataset.arrays.enumerated().filter { !leftOut.contains($0.offset) }.map(\.element)
    }
}
