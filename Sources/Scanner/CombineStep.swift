import HDF5Mapping
import ByteSource
import Foundation
import ObjectStore
import VirtualZarr

/// Which variables of the files a dataset holds.
public struct VariableSelection: Sendable, Equatable {
    /// Only these (with the coordinates they need); nil keeps every variable.
    public var keep: [String]?
    public var drop: [String] = []

    public init(keep: [String]? = nil, drop: [String] = []) {
        self.keep = keep
        self.drop = drop
    }

    public var isEverything: Bool { keep == nil && drop.isEmpty }

    /// A name matches an array by its path (`grp/v`) or, at the top, its name.
    static func matches(_ name: String, _ array: borrowing VirtualArray) -> Bool {
        array.path == name || (array.name == name && !array.path.contains("/"))
    }
}

/// The part of a scan after every file is read: choosing variables, checking the names the
/// user gave, inferring the concat dimension, ordering, comparing (the dimension coordinates by
/// default, everything under `--compat equals`) and combining.
extension Scanner {
    typealias Part = (name: String, dataset: VirtualDataset)

    static func combineParts(_ scanned: [Part], options: ScanOptions, store: RemoteStore?) async throws -> VirtualDataset {
        var parts = try select(scanned, selection: options.variables)
        var combine = options.combine
        var notes: [String] = []
        do {
            if let dimension = combine.concatDimension, combine.layout == .combined {
                try CombineRules.checkConcatDimension(dimension, parts: parts)
                if options.stack == nil {
                    let (kept, empty) = CombineRules.droppingEmptyParts(parts, along: dimension)
                    if !empty.isEmpty {
                        parts = kept
                        let named = empty.prefix(3).joined(separator: ", ") + (empty.count > 3 ? " and \(empty.count - 3) more" : "")
                        notes.append(
                            "left out \(empty.count) file\(empty.count == 1 ? "" : "s") with no \(dimension) step (length 0), which add nothing: \(named)")
                    }
                }
            }
            if let stack = options.stack {
                try CombineRules.checkStackDimension(stack.dimension, parts: parts)
                parts = try stackParts(parts, stack: stack)
                combine.concatDimension = stack.dimension
            } else if combine.concatDimension == nil, combine.layout == .combined {
                if let inference = try CombineRules.inferConcatDimension(parts, compat: combine.compat) {
                    combine.concatDimension = inference.dimension
                    notes.append(inference.message(files: parts.count))
                    if inference.ordersByCoordinate {
                        parts = try sortByCoordinate(parts, dimension: inference.dimension)
                        combine.orderedByCoordinate = true
                    }
                }
            } else if options.order == .coordinate, let dimension = combine.concatDimension {
                parts = try sortByCoordinate(parts, dimension: dimension)
                combine.orderedByCoordinate = true
            }
            if combine.compat == nil, combine.layout == .combined {
                try CombineRules.checkUnconcatenatedValuesAgree(parts, concatDimension: combine.concatDimension)
            }
        } catch let error as CombineError {
            throw ScanError.combine(error)
        }
        if combine.compat == .equals, combine.layout == .combined {
            try await compareUnconcatenated(parts, dimension: combine.concatDimension, store: store)
        } else if combine.compat == nil, combine.layout == .combined {
            try await compareStoredSamples(parts, dimension: combine.concatDimension, store: store, cache: options.cache)
        }
        var dataset: VirtualDataset
        do { dataset = try Combiner.combine(parts, options: combine) } catch let error as CombineError {
            throw ScanError.combine(error)
        }
        dataset.notes = notes + dataset.notes
        return dataset
    }

    /// Applies `--variables` and `--drop-variables`; a name no file has is an error.
    static func select(_ parts: [Part], selection: VariableSelection) throws -> [Part] {
        guard !selection.isEverything else { return parts }
        let names = Set(parts.flatMap { $0.dataset.arrays.flatMap { [$0.path, $0.name] } })
        for (option, list) in [("--variables", selection.keep ?? []), ("--drop-variables", selection.drop)] {
            for name in list where !names.contains(name) {
                let all = Array(Set(parts.flatMap { $0.dataset.arrays.map(\.path) })).sorted()
                throw ScanError.unknownVariable(
                    option: option, name: name, suggestion: CombineRules.closest(name, among: all), variables: all)
            }
        }
        return parts.map { part in
            var dataset = part.dataset
            if let keep = selection.keep {
                let chosen = dataset.arrays.filter { array in keep.contains { VariableSelection.matches($0, array) } }
                // What the chosen variables need: their dimensions' coordinates, and the
                // variables their `coordinates` and `bounds` attributes name.
                var needed = Set(chosen.map(\.path))
                for array in chosen {
                    let prefix = array.path.contains("/") ? String(array.path[..<array.path.lastIndex(of: "/")!]) + "/" : ""
                    for dimension in array.dimensionNames { needed.insert(prefix + dimension); needed.insert(dimension) }
                    for key in ["coordinates", "bounds"] {
                        for word in (array.attributes.first { $0.0 == key }?.1.stringValue ?? "").split(separator: " ") {
                            needed.insert(prefix + word)
                        }
                    }
                }
                dataset.arrays = dataset.arrays.filter { needed.contains($0.path) }
            }
            dataset.arrays.removeAll { array in selection.drop.contains { VariableSelection.matches($0, array) } }
            return (part.name, dataset)
        }
    }

    /// By default, the variables without the concat dimension whose values the scan did not
    /// read (a 2-D latitude) and whose stored lengths agree have samples of their stored bytes
    /// compared with the first holder's: the checksums that end zlib and Fletcher-32 chunks, or
    /// the first and last bytes. One request per file and object.
    static func compareStoredSamples(_ parts: [Part], dimension: String?, store: RemoteStore?, cache: ManifestCache?) async throws {
        let samples = CombineRules.storedSamples(parts, concatDimension: dimension)
        guard !samples.isEmpty else { return }
        // Every range a file's versions need, so that each file is read once (each of its
        // objects in one request), however many variables are compared.
        var wanted: [Int: Set<CombineRules.SampleRange>] = [:]
        for sample in samples {
            wanted[sample.first, default: []].formUnion(sample.firstRanges)
            wanted[sample.other, default: []].formUnion(sample.otherRanges)
        }
        let reader = ObjectReader(store: store)
        // A file's sampled bytes by range, from the manifest cache when this version of each
        // object was sampled before: a cached scan of an unchanged archive reads nothing.
        @Sendable func read(_ part: Part, _ ranges: Set<CombineRules.SampleRange>) async throws -> [CombineRules.SampleRange: [UInt8]] {
            var bytes: [CombineRules.SampleRange: [UInt8]] = [:]
            for object in Set(ranges.map(\.object)).sorted() {
                let info = part.dataset.objects[Int(object)]
                let own = ranges.filter { $0.object == object }.sorted { $0.range.lowerBound < $1.range.lowerBound }
                let key = info.identity.map { identity in
                    ([info.url, identity.encoded] + own.map { "\($0.range.lowerBound)-\($0.range.upperBound)" }).joined(separator: "\n")
                }
                let cached = key.flatMap { cache?.sample($0) }
                let joined: [UInt8]
                if let cached, cached.count == own.reduce(0, { $0 + $1.range.count }) {
                    joined = cached
                } else {
                    joined = Array(try await reader.read(info.url, identity: info.identity, ranges: own.map(\.range)).joined())
                    if let key { cache?.storeSample(key, bytes: joined) }
                }
                var position = 0
                for range in own {
                    let end = min(joined.count, position + range.range.count)
                    bytes[range] = Array(joined[position..<end])
                    position = end
                }
            }
            return bytes
        }
        var sampled: [Int: [CombineRules.SampleRange: [UInt8]]] = [:]
        do {
            let pending = wanted.sorted { $0.key < $1.key }
            try await BoundedTaskGroup.forEach(count: pending.count, width: 128) { position in
                try await read(parts[pending[position].key], pending[position].value)
            } consume: { position, bytes in
                sampled[pending[position].key] = bytes
            }
        } catch let error where error is ObjectStoreError || error is ByteSourceError {
            throw ScanError.samplingUnconcatenated(dimension: dimension, reason: "\(error)")
        }
        for sample in samples where sample.firstRanges.map({ sampled[sample.first]?[$0] }) != sample.otherRanges.map({ sampled[sample.other]?[$0] }) {
            let files = [parts[sample.first].name, parts[sample.other].name]
            throw ScanError.combine(
                .variableDisagrees(
                    variable: sample.path, files: files,
                    detail: CombineRules.storedDifferenceAdvice(
                        sample.path, files: files, difference: "their stored bytes differ", along: dimension ?? "concat")))
        }
    }

    /// `--compat equals`: every variable without the concat dimension must hold the same values
    /// in every file that has it. Arrays up to 16 MiB are compared decoded; larger ones by their
    /// stored chunks.
    static func compareUnconcatenated(_ parts: [Part], dimension: String?, store: RemoteStore?) async throws {
        let reader = ObjectReader(store: store)
        let maxDecodedBytes = 16 << 20
        var firstHolder: [String: Int] = [:]
        var pairs: [(path: String, first: Int, other: Int)] = []
        for (index, part) in parts.enumerated() {
            for array in part.dataset.arrays where dimension.map({ !array.dimensionNames.contains($0) }) ?? true {
                if let holder = firstHolder[array.path] { pairs.append((array.path, holder, index)) } else { firstHolder[array.path] = index }
            }
        }
        @Sendable func values(_ part: Part, _ path: String) async throws -> (VirtualArray, [UInt8]?) {
            let array = part.dataset.arrays.first { $0.path == path }!
            let object = part.dataset.objects[0]
            let size = array.shape.reduce(UInt64(array.dtype.itemSize)) { $0.multipliedReportingOverflow(by: $1).partialValue }
            guard size <= UInt64(maxDecodedBytes), array.dtype.kind != .variableString else { return (array, nil) }
            let fetch: ByteFetcher = { offset, length in
                try await reader.read(object.url, identity: object.identity, range: offset..<(offset + UInt64(length)))
            }
            return (array, try await ArrayValues.decoded(array, fetch: fetch, maxBytes: maxDecodedBytes))
        }
        @Sendable func storedChunksEqual(_ a: VirtualArray, _ first: Part, _ b: VirtualArray, _ other: Part) async throws -> Bool {
            guard a.codecs == b.codecs, a.chunkShape == b.chunkShape, a.manifest.setIndices == b.manifest.setIndices else { return false }
            for linear in a.manifest.setIndices {
                if try await stored(a.manifest[linear], first) != stored(b.manifest[linear], other) { return false }
            }
            return true
        }
        @Sendable func stored(_ entry: ChunkEntry, _ part: Part) async throws -> [UInt8] {
            switch entry {
            case .missing: return []
            case .inline(let bytes): return bytes
            case .reference(_, let offset, let length):
                let object = part.dataset.objects[0]
                return try await reader.read(object.url, identity: object.identity, range: offset..<(offset + length))
            }
        }
        do {
            // The first file's version of each variable is read once, not once per other file.
            let firstPaths = Array(Set(pairs.map(\.path)))
            let firstValues = try await withThrowingTaskGroup(of: (String, VirtualArray, [UInt8]?).self) { group in
                for path in firstPaths {
                    let first = parts[firstHolder[path]!]
                    group.addTask {
                        let (array, bytes) = try await values(first, path); return (path, array, bytes)
                    }
                }
                var read: [String: (VirtualArray, [UInt8]?)] = [:]
                for try await (path, array, bytes) in group { read[path] = (array, bytes) }
                return read
            }
            try await BoundedTaskGroup.forEach(count: pairs.count, width: 32) { [pairs] index in
                let pair = pairs[index]
                let first = parts[pair.first], other = parts[pair.other]
                let (a, left) = firstValues[pair.path]!
                let (b, right) = try await values(other, pair.path)
                // Shapes or types that differ are the combiner's to report.
                guard a.shape == b.shape, Combiner.littleEndian(a.dtype) == Combiner.littleEndian(b.dtype) else { return true }
                if var left, var right {
                    // Numbers stored in both byte orders are compared in one.
                    if a.dtype != b.dtype {
                        ByteSwap.littleEndianNumber(a.dtype)?.0.apply(&left)
                        ByteSwap.littleEndianNumber(b.dtype)?.0.apply(&right)
                    }
                    return left == right
                }
                // Stored bytes in two byte orders cannot show that the values agree.
                guard a.dtype == b.dtype else { return false }
                return try await storedChunksEqual(a, first, b, other)
            } consume: { index, equal in
                guard !equal else { return }
                let pair = pairs[index]
                throw ScanError.compatEquals(
                    variable: pair.path,
                    detail:
                        "variable \(pair.path) differs between \(parts[pair.first].name) and \(parts[pair.other].name); it has no \(dimension ?? "concat") dimension, so one file's version would stand for both. Leave it out with --drop-variables \(pair.path), or keep the first file's with --compat override"
                )
            }
        } catch let error as ObjectStoreError {
            throw ScanError.compatEquals(variable: nil, detail: "\(error)")
        } catch let error as MappingError {
            throw ScanError.compatEquals(variable: nil, detail: "\(error)")
        } catch let error as CodecError {
            throw ScanError.compatEquals(variable: nil, detail: "\(error)")
        } catch let error as ByteSourceError {
            throw ScanError.compatEquals(variable: nil, detail: "\(error)")
        }
    }
}
