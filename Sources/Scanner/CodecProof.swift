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

    /// A chunk whose decoding proved a chain: where it is and what it decodes to.
    public struct ProvenChunk: Sendable, Hashable {
        var url: String
        var offset: UInt64
        var length: UInt64
        var decodedSize: Int
    }

    /// Chunks proven before the files were combined (`proveAhead`), each with its chain.
    public struct ProvenAhead: Sendable {
        var chains: [ProvenChunk: [Codec]] = [:]
        public init() {}
        public var isEmpty: Bool { chains.isEmpty }
        public var count: Int { chains.count }
    }

    /// Stored entries of one array searched for a chunk proven ahead before the array is given
    /// a trial of its own: the scan's first file usually comes early in an array, and the
    /// search must not cost a pass over an array of tens of millions of chunks.
    static let provenAheadSearchLimit = 1 << 20

    /// The arrays whose chain can be proven and is not yet, each with its first stored chunk;
    /// pure. An array with a chunk in `provenAhead` under its own chain needs no trial.
    static func trials(_ dataset: VirtualDataset, provenAhead: ProvenAhead = ProvenAhead()) -> [Trial] {
        var trials: [Trial] = []
        var aheadObjects = Set<UInt32>()
        if !provenAhead.isEmpty {
            let urls = Set(provenAhead.chains.keys.map(\.url))
            for (index, object) in dataset.objects.enumerated() where urls.contains(object.url) { aheadObjects.insert(UInt32(index)) }
        }
        for (index, array) in dataset.arrays.enumerated() {
            // Arrays from imported references may carry codecs zarrmount does not decode;
            // regridded arrays are proven chunk by chunk as they are assembled.
            guard !array.codecs.isEmpty, array.regridding == nil,
                Codec.foreign(in: array.codecs) == nil
            else { continue }
            let elements = array.chunkShape.reduce(UInt64(1)) { $0.multipliedReportingOverflow(by: $1).partialValue }
            let (decoded, overflow) = elements.multipliedReportingOverflow(by: UInt64(array.dtype.itemSize))
            guard !overflow, decoded <= UInt64(Int.max) else { continue }
            if !aheadObjects.isEmpty, hasChunkProvenAhead(array, decodedSize: Int(decoded), objects: dataset.objects, in: aheadObjects, provenAhead) {
                continue
            }
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

    /// Whether one of `array`'s first stored chunks (`provenAheadSearchLimit`) lies in an
    /// object of `aheadObjects` and was proven ahead under the array's own chain.
    static func hasChunkProvenAhead(
        _ array: VirtualArray, decodedSize: Int, objects: [ObjectInfo], in aheadObjects: Set<UInt32>, _ provenAhead: ProvenAhead
    ) -> Bool {
        var searched = 0
        var linear = array.manifest.nextStored(from: 0, before: array.manifest.count)
        while let current = linear, searched < provenAheadSearchLimit {
            searched += 1
            if case .reference(let object, let offset, let length) = array.manifest[current], aheadObjects.contains(object) {
                let key = ProvenChunk(url: objects[Int(object)].url, offset: offset, length: length, decodedSize: decodedSize)
                if let chain = provenAhead.chains[key], chain == array.codecs { return true }
            }
            linear = array.manifest.nextStored(from: current + 1, before: array.manifest.count)
        }
        return false
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
    /// decode. Errors reading a chunk are the store's and stop the scan. A chunk proven ahead
    /// (`proveAhead`) stands for its array's trial.
    public static func prove(
        _ dataset: inout VirtualDataset, store: RemoteStore?, cache: ManifestCache? = nil, provenAhead: ProvenAhead = ProvenAhead()
    ) async throws {
        let trials = trials(dataset, provenAhead: provenAhead).filter { !isCached($0, cache) }
        guard !trials.isEmpty else { return }
        let failures = try await run(trials, store: store, cache: cache)
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

    /// Proves the chains of one scanned file's arrays (the first listed) while the other files
    /// are still being scanned, so that `prove` finds most arrays proven when the files are
    /// combined. Returns the chunks that decoded (cached proofs included); a chunk that does
    /// not decode, or cannot be read, is left for `prove`, which reports it.
    public static func proveAhead(_ file: VirtualDataset, store: RemoteStore?, cache: ManifestCache? = nil) async -> ProvenAhead {
        var proven = ProvenAhead()
        let trials = trials(file)
        var uncached: [Trial] = []
        for trial in trials {
            if isCached(trial, cache) {
                proven.chains[ProvenChunk(trial)] = trial.codecs
            } else {
                uncached.append(trial)
            }
        }
        guard !uncached.isEmpty, let failures = try? await run(uncached, store: store, cache: cache) else { return proven }
        let failed = Set(failures.map(\.0))
        for (position, trial) in uncached.enumerated() where !failed.contains(position) { proven.chains[ProvenChunk(trial)] = trial.codecs }
        return proven
    }

    /// Chains proven by an earlier scan of the same object versions are not read again.
    private static func isCached(_ trial: Trial, _ cache: ManifestCache?) -> Bool {
        guard let cache, let identity = trial.object.identity else { return false }
        return cache.isProven(url: trial.object.url, identity: identity, offset: trial.offset, length: trial.length, codecs: trial.codecs)
    }

    /// Reads and decodes every trial's chunk; the trials (by position) whose chunk does not
    /// decode, with why. Errors reading a chunk are the store's and are thrown.
    private static func run(_ trials: [Trial], store: RemoteStore?, cache: ManifestCache?) async throws -> [(Int, String)] {
        let reader = ObjectReader(store: store)
        var byObject: [String: [Int]] = [:]
        for (position, trial) in trials.enumerated() { byObject[trial.object.url, default: []].append(position) }
        let groups = byObject.values.map { $0.sorted { trials[$0].offset < trials[$1].offset } }
        var failures: [(Int, String)] = []
        try await BoundedTaskGroup.forEach(count: groups.count, width: 32) { index in
            let positions = groups[index]
            let object = trials[positions[0]].object
            let chunks = try await reader.read(
                object.url, identity: object.identity,
                ranges: positions.map { trials[$0].offset..<(trials[$0].offset + trials[$0].length) })
            // One object usually holds every variable's trial (the first file's), so its chunks
            // decode in parallel rather than one after another.
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
        } consume: { _, results in
            for case let (position, failure?) in results { failures.append((position, failure)) }
        }
        return failures
    }
}

extension CodecProof.ProvenChunk {
    init(_ trial: CodecProof.Trial) {
        self.init(url: trial.object.url, offset: trial.offset, length: trial.length, decodedSize: trial.decodedSize)
    }
}
