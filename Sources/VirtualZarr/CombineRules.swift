import JSONValue

/// What to do with variables that lack the concat dimension and appear in several files.
public enum CompatPolicy: String, Sendable, CaseIterable {
    /// The first file's version (xarray's `compat="override"`), without reading anything.
    case override
    /// Every file's version is compared with the first file's; a difference stops the scan.
    case equals
}

/// How the concat dimension was chosen when the user named none, for the message on stderr.
public struct ConcatInference: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// Its dimension coordinate's values differ between files; files are ordered by it.
        case coordinateDiffers
        /// The only unlimited dimension, which has no coordinate variable; files keep their order.
        case unlimitedWithoutCoordinate
    }

    public var dimension: String
    public var reason: Reason

    public var ordersByCoordinate: Bool { reason == .coordinateDiffers }

    public func message(files: Int) -> String {
        switch reason {
        case .coordinateDiffers:
            return
                "combining \(files) files along \(dimension): its coordinate values differ between files (files ordered by \(dimension); name another dimension with --concat-dim)"
        case .unlimitedWithoutCoordinate:
            return
                "combining \(files) files along \(dimension): the unlimited dimension, which has no coordinate variable (files in name order; name another dimension with --concat-dim)"
        }
    }
}

/// The rules that decide whether files may be combined and how, apart from the copying of
/// manifests: each either answers or throws an error naming the files, the variable and what
/// to do.
public enum CombineRules {
    public typealias Part = (name: String, dataset: VirtualDataset)

    /// The dimensions of each array, in the order first met.
    static func dimensions(of parts: [Part]) -> [String] {
        var seen: Set<String> = []
        var order: [String] = []
        for part in parts {
            for array in part.dataset.arrays {
                for name in array.dimensionNames where seen.insert(name).inserted { order.append(name) }
            }
        }
        return order
    }

    /// A 1-D array named like its dimension, at the top of the dataset.
    static func isDimensionCoordinate(_ array: borrowing VirtualArray) -> Bool {
        array.dimensionNames.count == 1 && array.path == array.dimensionNames[0]
    }

    /// Chooses the concat dimension as xarray's `combine_by_coords` does: the one dimension
    /// whose coordinate differs between files; failing that, the only unlimited dimension that
    /// has no coordinate variable. Returns nil when the files share no variable (they merge).
    public static func inferConcatDimension(_ parts: [Part], compat: CompatPolicy?) throws -> ConcatInference? {
        guard parts.count > 1 else { return nil }
        let everywhere = parts.dropFirst().reduce(Set(parts[0].dataset.arrays.flatMap(\.dimensionNames))) {
            $0.intersection($1.dataset.arrays.flatMap(\.dimensionNames))
        }
        let candidates = dimensions(of: parts).filter { everywhere.contains($0) }
        var differing: [(dimension: String, files: (String, String))] = []
        var identical: [String] = []
        for dimension in candidates {
            let versions = parts.map { part in part.dataset.arrays.first { $0.path == dimension && isDimensionCoordinate($0) } }
            guard let first = versions[0], versions.allSatisfy({ $0 != nil }) else { continue }
            if let other = versions.indices.dropFirst().first(where: { !sameCoordinate(first, versions[$0]!) }) {
                differing.append((dimension, (parts[0].name, parts[other].name)))
            } else if versions.allSatisfy({ $0!.manifest.count == 1 && isInline($0!.manifest[0]) }) {
                identical.append(dimension)
            }
        }
        if differing.count == 1 {
            return ConcatInference(dimension: differing[0].dimension, reason: .coordinateDiffers)
        }
        if differing.count > 1 {
            let list = differing.map { "\($0.dimension) (\($0.files.0) and \($0.files.1) differ)" }.joined(separator: ", ")
            throw CombineError.noCombineDimension(
                fileCount: parts.count,
                detail:
                    "cannot combine \(parts.count) files along one dimension: the coordinates of \(list) all differ between files; zarrmount concatenates along one dimension, so choose it with --concat-dim (the other coordinates must then agree) or mount each file in its own group with --layout per_file"
            )
        }
        let unlimited = parts.dropFirst().reduce(Set(parts[0].dataset.unlimitedDimensions)) {
            $0.intersection($1.dataset.unlimitedDimensions)
        }
        let withoutCoordinate = candidates.filter { dimension in
            unlimited.contains(dimension) && !parts.contains { $0.dataset.arrays.contains { $0.path == dimension && isDimensionCoordinate($0) } }
        }
        if withoutCoordinate.count == 1 {
            return ConcatInference(dimension: withoutCoordinate[0], reason: .unlimitedWithoutCoordinate)
        }
        // Nothing to concatenate along: files merge, which is right only when no variable is in
        // two of them (or the user said the first file's version is the one to keep).
        guard let shared = sharedVariable(parts), compat != .override else { return nil }
        let sameValues = identical.isEmpty ? "" : "; every file has the same \(identical.joined(separator: ", ")) values"
        let listed = candidates.isEmpty ? "none" : candidates.joined(separator: ", ")
        throw CombineError.noCombineDimension(
            fileCount: parts.count,
            detail:
                "cannot tell how to combine \(parts.count) files: no dimension coordinate differs between them\(sameValues), and variable \(shared.variable) is in both \(shared.files.0) and \(shared.files.1). Dimensions every file has: \(listed). Name the one to concatenate along with --concat-dim DIM, stack the files along a new dimension with --stack-dim and --stack-regex, mount each file in its own group with --layout per_file, or keep the first file's variables with --compat override"
        )
    }

    /// Stops when a variable without the concat dimension differs between files: the combined
    /// dataset keeps one file's version of it. A dimension coordinate that differs would put
    /// every other file's values at the wrong latitudes, levels or instants (xarray would align
    /// the files instead); a scalar that differs (a forecast's reference time) would be one
    /// file's for all. Values read with the scan are compared (dimension coordinates up to the
    /// inlining limit, numeric scalars, compact data), the others by their storage (the scan
    /// then samples their bytes, `storedSamples`), so this check reads nothing; `--compat
    /// override` skips it and `--compat equals` compares every such variable's values.
    public static func checkUnconcatenatedValuesAgree(_ parts: [Part], concatDimension: String?) throws {
        try forEachLaterVersion(parts, concatDimension: concatDimension) { holder, first, index, array in
            let files = [parts[holder].name, parts[index].name]
            let along = concatDimension ?? "concat"
            guard holdsReadValues(first), holdsReadValues(array) else {
                // Not read with the scan (a 2-D latitude, a long coordinate): what the
                // manifests say of the stored bytes must agree, or one file's version would
                // silently stand for the others'. Another type (or byte order) is the
                // combiner's to report, for every variable alike.
                guard first.dtype == array.dtype, let difference = storageDifference(first, array) else { return }
                throw CombineError.variableDisagrees(
                    variable: array.path, files: files,
                    detail: storedDifferenceAdvice(array.path, files: files, difference: difference, along: along))
            }
            if isDimensionCoordinate(array) {
                guard !sameCoordinate(first, array) else { return }
                throw CombineError.coordinateConflict(
                    coordinate: array.path, files: files,
                    detail:
                        "coordinate \(array.path) differs between \(files[0]) and \(files[1])\(firstDifference(first, array).map { " (\($0))" } ?? ""); it has no \(along) dimension, so the combined dataset would label every file's values with one file's \(array.path). Mount the files separately (--layout per_file) or leave the odd files out; if they are the same grid written differently, keep the first file's with --compat override"
                )
            }
            guard !sameCoordinate(first, array) else { return }
            throw CombineError.variableDisagrees(
                variable: array.path, files: files,
                detail:
                    "variable \(array.path) differs between \(files[0]) and \(files[1])\(firstDifference(first, array).map { " (\($0))" } ?? ""); it has no \(along) dimension, so the combined dataset would hold one file's \(array.path) for all. Leave it out with --drop-variables \(array.path), or keep the first file's with --compat override"
            )
        }
    }

    /// Leaves out the files that hold no step along `dimension` (every array that has it is of
    /// length 0 there, a model day that wrote no record) and no variable another file lacks:
    /// they add nothing to the concatenation, as xarray finds. Returns the other files and the
    /// names of those left out; when every file is empty, all of them and none.
    public static func droppingEmptyParts(_ parts: [Part], along dimension: String) -> (parts: [Part], empty: [String]) {
        func isEmpty(_ part: Part) -> Bool {
            var alongDimension = false
            for array in part.dataset.arrays {
                guard let axis = array.dimensionNames.firstIndex(of: dimension), axis < array.shape.count else { continue }
                if array.shape[axis] != 0 { return false }
                alongDimension = true
            }
            return alongDimension
        }
        let empty = parts.indices.filter { isEmpty(parts[$0]) }
        guard !empty.isEmpty, empty.count < parts.count else { return (parts, []) }
        let emptySet = Set(empty)
        var heldElsewhere = Set<String>()
        for index in parts.indices where !emptySet.contains(index) {
            for array in parts[index].dataset.arrays { heldElsewhere.insert(array.path) }
        }
        let dropped = Set(empty.filter { index in parts[index].dataset.arrays.allSatisfy { heldElsewhere.contains($0.path) } })
        guard !dropped.isEmpty else { return (parts, []) }
        return (parts.indices.filter { !dropped.contains($0) }.map { parts[$0] }, dropped.sorted().map { parts[$0].name })
    }

    /// Calls `body` with each later file's version of every variable without the concat
    /// dimension, beside the version of the first file that holds it (with both files' indices).
    static func forEachLaterVersion(
        _ parts: [Part], concatDimension: String?, _ body: (Int, VirtualArray, Int, VirtualArray) throws -> Void
    ) rethrows {
        guard parts.count > 1 else { return }
        // Where each variable was first met (file, then array), so that every later version is
        // compared without searching the first file's arrays again: 100,000 files pass here.
        var firstHolder: [String: (part: Int, array: Int)] = [:]
        for (index, part) in parts.enumerated() {
            for (position, array) in part.dataset.arrays.enumerated() where !array.dimensionNames.contains(where: { $0 == concatDimension }) {
                guard let holder = firstHolder[array.path] else {
                    firstHolder[array.path] = (index, position)
                    continue
                }
                try body(holder.part, parts[holder.part].dataset.arrays[holder.array], index, array)
            }
        }
    }

    /// Whether the scan read the array's values: one inline chunk (a dimension coordinate or
    /// scalar inlined for comparison, compact data).
    static func holdsReadValues(_ array: borrowing VirtualArray) -> Bool {
        array.manifest.count == 1 && isInline(array.manifest[0])
    }

    /// How two files' versions of an array of one type whose values were not read differ in
    /// what the manifests know of their storage, or nil when they are stored alike: the same
    /// shape, units, codecs and chunk grid, the same chunks written, each the same number of stored
    /// bytes, and inline chunks (or fill chunks) the same bytes. Compressed chunks of other
    /// values rarely keep every length, uncompressed ones always do: the scan then compares
    /// samples of the bytes (`storedSamples`).
    static func storageDifference(_ a: borrowing VirtualArray, _ b: borrowing VirtualArray) -> String? {
        if a.shape != b.shape { return "\(a.shape.map(String.init).joined(separator: "x")) against \(b.shape.map(String.init).joined(separator: "x")) values" }
        if stringAttribute(a, "units") != stringAttribute(b, "units") {
            return "units \(stringAttribute(a, "units") ?? "none") against \(stringAttribute(b, "units") ?? "none")"
        }
        if a.codecs != b.codecs || a.chunkShape != b.chunkShape { return "stored with other codecs or chunks" }
        if a.manifest.fillChunk != b.manifest.fillChunk { return "another fill value" }
        let written = a.manifest.setIndices
        if written != b.manifest.setIndices { return "\(written.count) chunks written against \(b.manifest.setIndices.count)" }
        for linear in written {
            switch (a.manifest[linear], b.manifest[linear]) {
            case (.reference(_, _, let left), .reference(_, _, let right)):
                if left != right { return "chunk \(linear) holds \(left) stored bytes against \(right)" }
            case (.inline(let left), .inline(let right)):
                if left != right { return "chunk \(linear) holds other bytes" }
            case (.missing, .missing):
                continue
            default:
                return "chunk \(linear) is stored differently"
            }
        }
        return nil
    }

    /// The message for a variable without the concat dimension whose stored bytes differ.
    public static func storedDifferenceAdvice(_ path: String, files: [String], difference: String, along: String) -> String {
        "variable \(path) differs between \(files[0]) and \(files[1]) (\(difference)); it has no \(along) dimension, so the combined dataset would hold one file's \(path) for all. If the files hold the same \(path) written differently, compare the decoded values with --compat equals or keep the first file's with --compat override; otherwise leave it out with --drop-variables \(path), or mount the files separately (--layout per_file)"
    }

    /// A variable without the concat dimension whose values the scan did not read, and the
    /// bytes of two files' versions to compare (`sampleRanges`): its first holder's and another
    /// file's.
    public struct StoredSample: Sendable, Equatable {
        public var path: String
        /// Index of the part that first holds the variable, and of the part compared with it.
        public var first: Int
        public var other: Int
        public var firstRanges: [SampleRange]
        public var otherRanges: [SampleRange]
    }

    public struct SampleRange: Sendable, Hashable {
        public var object: UInt32
        public var range: Range<UInt64>
    }

    /// Bytes sampled at each end of a variable's stored bytes when its chunks end in no checksum.
    public static let sampleBytes: UInt64 = 4096
    /// Chunks whose checksums are compared, at most, per variable (evenly spaced beyond).
    public static let maxChecksummedChunks = 1024

    /// The samples the scan reads to compare the variables without the concat dimension that
    /// `checkUnconcatenatedValuesAgree` found stored alike but could not compare by value.
    public static func storedSamples(_ parts: [Part], concatDimension: String?) -> [StoredSample] {
        var samples: [StoredSample] = []
        // The first holder's ranges, worked out once per variable rather than once per other file.
        var firstRanges: [String: [SampleRange]?] = [:]
        forEachLaterVersion(parts, concatDimension: concatDimension) { holder, first, index, array in
            guard first.dtype == array.dtype, !holdsReadValues(first), !holdsReadValues(array) else { return }
            if firstRanges[array.path] == nil { firstRanges[array.path] = .some(sampleRanges(first)) }
            guard let ranges = firstRanges[array.path]!, let otherRanges = sampleRanges(array) else { return }
            samples.append(StoredSample(path: array.path, first: holder, other: index, firstRanges: ranges, otherRanges: otherRanges))
        }
        return samples
    }

    /// What to read of an array's stored chunks to tell its values from another file's, nil
    /// when no chunk is referenced. Chunks that end in a checksum of their content (zlib's
    /// Adler-32, HDF5's Fletcher-32) are compared by those four bytes, every chunk's (evenly
    /// spaced past `maxChecksummedChunks`); others by the first bytes of the first chunk and the
    /// last of the last (one range when they overlap).
    static func sampleRanges(_ array: borrowing VirtualArray) -> [SampleRange]? {
        var references: [(object: UInt32, offset: UInt64, length: UInt64)] = []
        for linear in array.manifest.setIndices {
            if case .reference(let object, let offset, let length) = array.manifest[linear], length > 0 {
                references.append((object, offset, length))
            }
        }
        guard let head = references.first, let tail = references.last else { return nil }
        if Codec.pipelineEndsInChecksum(array.codecs), references.allSatisfy({ $0.length >= 4 }) {
            let stride = max(1, (references.count + maxChecksummedChunks - 1) / maxChecksummedChunks)
            var picked = Swift.stride(from: 0, to: references.count, by: stride).map { references[$0] }
            if picked.count < references.count { picked.append(tail) }
            return picked.map { SampleRange(object: $0.object, range: ($0.offset + $0.length - 4)..<($0.offset + $0.length)) }
        }
        let start = SampleRange(object: head.object, range: head.offset..<(head.offset + min(head.length, sampleBytes)))
        let tailStart = tail.offset + tail.length - min(tail.length, sampleBytes)
        let end = SampleRange(object: tail.object, range: tailStart..<(tail.offset + tail.length))
        if end.object == start.object, end.range.lowerBound <= start.range.upperBound {
            return [SampleRange(object: head.object, range: start.range.lowerBound..<max(start.range.upperBound, end.range.upperBound))]
        }
        return [start, end]
    }

    /// Where two versions of an array first differ, for the message: the index and both
    /// values, or what else differs (shape, units).
    static func firstDifference(_ a: borrowing VirtualArray, _ b: borrowing VirtualArray) -> String? {
        if a.shape != b.shape { return "\(a.shape.map(String.init).joined(separator: "x")) against \(b.shape.map(String.init).joined(separator: "x")) values" }
        if stringAttribute(a, "units") != stringAttribute(b, "units") {
            return "units \(stringAttribute(a, "units") ?? "none") against \(stringAttribute(b, "units") ?? "none")"
        }
        guard a.manifest.count == 1, b.manifest.count == 1, case .inline(let left) = a.manifest[0], case .inline(let right) = b.manifest[0],
            let count = valueCount(a), let x = NumericValues.doubles(left, dtype: a.dtype, count: count),
            let y = NumericValues.doubles(right, dtype: b.dtype, count: count),
            let index = x.indices.first(where: { x[$0] != y[$0] && !(x[$0].isNaN && y[$0].isNaN) })
        else { return nil }
        return "at index \(index): \(Combiner.formatValue(x[index])) against \(Combiner.formatValue(y[index]))"
    }

    /// How many values an array holds, or nil past what an inline chunk could hold.
    static func valueCount(_ array: borrowing VirtualArray) -> Int? {
        var count: UInt64 = 1
        for extent in array.shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            guard !overflow, product <= UInt64(Int32.max) else { return nil }
            count = product
        }
        return Int(count)
    }

    /// A variable other than a dimension coordinate that two files both hold, with the files.
    static func sharedVariable(_ parts: [Part]) -> (variable: String, files: (String, String))? {
        var firstHolder: [String: Int] = [:]
        for (index, part) in parts.enumerated() {
            for array in part.dataset.arrays where !isDimensionCoordinate(array) {
                if let holder = firstHolder[array.path] { return (array.path, (parts[holder].name, part.name)) }
                firstHolder[array.path] = index
            }
        }
        return nil
    }

    /// Whether two files' versions of a coordinate are known to hold the same instants or
    /// values: inline and equal (decoded with each file's time units where they have them).
    /// Coordinates too large to inline count as equal (their values were not read).
    static func sameCoordinate(_ a: borrowing VirtualArray, _ b: borrowing VirtualArray) -> Bool {
        guard a.manifest.count == 1, b.manifest.count == 1, case .inline(let left) = a.manifest[0], case .inline(let right) = b.manifest[0] else {
            return a.shape == b.shape
        }
        if a.shape != b.shape { return false }
        let unitsA = timeUnits(a), unitsB = timeUnits(b)
        if let unitsA, let unitsB, unitsA != unitsB {
            guard unitsA.calendar == unitsB.calendar, let count = valueCount(a), let x = NumericValues.doubles(left, dtype: a.dtype, count: count),
                let y = NumericValues.doubles(right, dtype: b.dtype, count: count)
            else { return false }
            return zip(x, y).allSatisfy { CFTimeConversion.instant($0, units: unitsA) == CFTimeConversion.instant($1, units: unitsB) }
        }
        guard stringAttribute(a, "units") == stringAttribute(b, "units") else { return false }
        if a.dtype == b.dtype {
            let used = Int(a.shape.reduce(UInt64(a.dtype.itemSize), *))
            return left.prefix(used) == right.prefix(used)
        }
        // Another byte order or width (a netCDF-3 file beside netCDF-4 ones): the same values
        // are the same coordinate.
        guard let count = valueCount(a), let x = NumericValues.doubles(left, dtype: a.dtype, count: count),
            let y = NumericValues.doubles(right, dtype: b.dtype, count: count)
        else { return false }
        return x.indices.allSatisfy { x[$0] == y[$0] || (x[$0].isNaN && y[$0].isNaN) }
    }

    static func isInline(_ entry: ChunkEntry) -> Bool {
        if case .inline = entry { return true }
        return false
    }

    static func stringAttribute(_ array: borrowing VirtualArray, _ key: String) -> String? {
        array.attributes.first { $0.0 == key }?.1.stringValue
    }

    /// The array's CF time units (with its calendar), if its `units` are CF time units.
    public static func timeUnits(_ array: borrowing VirtualArray) -> CFTimeUnits? {
        guard let units = stringAttribute(array, "units") else { return nil }
        return CFTimeUnits(units: units, calendar: stringAttribute(array, "calendar"))
    }

    // MARK: the concat dimension named by the user

    /// Stops when no file has the named concat dimension, listing those there are and the
    /// likely intended one.
    public static func checkConcatDimension(_ dimension: String, parts: [Part]) throws {
        let all = dimensions(of: parts)
        guard !all.contains(dimension) else { return }
        var message = "--concat-dim \(dimension): no file has a dimension \(dimension)"
        message += closest(dimension, among: all).map { "; did you mean \($0)?" } ?? "."
        message += " The files' dimensions: \(all.isEmpty ? "none" : all.joined(separator: ", "))"
        throw CombineError.invalidOption(option: "--concat-dim", detail: message)
    }

    /// Stops when the stacking dimension's name is already a dimension of the files.
    public static func checkStackDimension(_ dimension: String, parts: [Part]) throws {
        let all = dimensions(of: parts)
        if all.contains(dimension) {
            throw CombineError.invalidOption(
                option: "--stack-dim",
                detail:
                    "--stack-dim \(dimension): the files already have a dimension \(dimension); stacking adds a new one, so choose another name (or concatenate along it with --concat-dim \(dimension))"
            )
        }
    }

    /// The name a user probably meant: the same up to case, else at most two edits away.
    public static func closest(_ word: String, among names: [String]) -> String? {
        if let same = names.first(where: { $0.lowercased() == word.lowercased() }) { return same }
        let scored = names.map { ($0, editDistance(Array($0.lowercased()), Array(word.lowercased()))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= min(2, max(1, word.count / 2)) else { return nil }
        return best.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }

    // MARK: per-file CF encoding of concatenated variables

    /// Attributes that change what a variable's stored values mean: files that disagree on them
    /// cannot share one set, so the combined variable would decode some files' values wrongly.
    static let encodingAttributes = ["scale_factor", "add_offset", "missing_value", "units", "calendar"]

    /// Stops when concatenated files encode a variable's values differently. `reencodesUnits`
    /// exempts the concat coordinate's time units and calendar, which are re-encoded instead.
    static func checkSameEncoding(_ versions: Combiner.ArrayVersions, reencodesUnits: Bool) throws {
        let first = versions[0]
        for version in versions.indices.dropFirst() {
            let other = versions[version]
            for key in encodingAttributes where !(reencodesUnits && (key == "units" || key == "calendar")) {
                let a = first.attributes.first { $0.0 == key }?.1
                let b = other.attributes.first { $0.0 == key }?.1
                if a != b {
                    // `--decoded --unpack` takes other packings, not other units.
                    let unpack = key == "units" || key == "calendar" ? "" : "Mount with --decoded --unpack to serve it unpacked per file, "
                    throw CombineError.variableDisagrees(
                        variable: first.path, files: [versions.file(0), versions.file(version)],
                        detail:
                            "variable \(first.path) is encoded differently in \(versions.file(0)) and \(versions.file(version)): \(key) is \(a.map(render) ?? "absent") in \(versions.file(0)) but \(b.map(render) ?? "absent") in \(versions.file(version)), so one set of attributes would decode some files' values wrongly. \(unpack.isEmpty ? "L" : unpack + "l")eave it out with --drop-variables \(first.path), or mount the files separately (--layout per_file)"
                    )
                }
            }
            if first.fillValue != other.fillValue {
                throw CombineError.variableDisagrees(
                    variable: first.path, files: [versions.file(0), versions.file(version)],
                    detail:
                        "variable \(first.path) is encoded differently in \(versions.file(0)) and \(versions.file(version)): _FillValue is \(render(first.fillValue)) in \(versions.file(0)) but \(render(other.fillValue)) in \(versions.file(version)), so one fill value would mask some files' values wrongly. Mount with --decoded --unpack to serve it unpacked per file, leave it out with --drop-variables \(first.path), or mount the files separately (--layout per_file)"
                )
            }
        }
    }

    /// Each file's packing of a variable whose files differ only in it, or nil when they differ
    /// in more (units, calendar) or the values cannot be unpacked.
    static func perFileUnpacking(_ versions: Combiner.ArrayVersions) throws -> Unpacking? {
        let first = versions[0]
        guard Unpacking.supports(first.dtype) else { return nil }
        var byObject: [UInt32: Packing] = [:]
        for version in versions.indices {
            let array = versions[version]
            for key in ["units", "calendar"] where stringAttribute(array, key) != stringAttribute(first, key) { return nil }
            guard let packing = Packing(attributes: array.attributes, fillValue: array.fillValue) else { return nil }
            let offset = versions.objectOffset(version)
            for object in 0..<UInt32(versions.objectCount(version)) { byObject[offset + object] = packing }
        }
        return Unpacking(packed: first.dtype, byObject: byObject)
    }

    static func render(_ value: JSON) -> String {
        value == .null ? "absent" : value.rendered()
    }

    // MARK: CF time re-encoding

    /// The concatenated values of an inline time coordinate whose files count in different
    /// units, in the first file's units: the same integer type when every shift is whole,
    /// float64 otherwise (and a note says so). nil when every file uses the same units.
    static func reencodedTime(_ versions: Combiner.ArrayVersions) throws -> (bytes: [UInt8], dtype: ZarrDataType, note: String)? {
        let texts = versions.indices.map { stringAttribute(versions[$0], "units") }
        let calendars = versions.indices.map { stringAttribute(versions[$0], "calendar") }
        guard texts.contains(where: { $0 != texts[0] }) || calendars.contains(where: { $0 != calendars[0] }) else {
            return try widenedNumbers(versions)
        }
        let path = versions[0].path
        var parsed: [CFTimeUnits] = []
        for version in versions.indices {
            guard let text = texts[version] else {
                throw CombineError.coordinateConflict(
                    coordinate: path, files: [versions.file(0), versions.file(version)],
                    detail:
                        "coordinate \(path) has units \(texts[0] ?? "none") in \(versions.file(0)) but none in \(versions.file(version)); zarrmount cannot put both files' values on one axis. Fix the file or leave it out"
                )
            }
            guard let units = CFTimeUnits(units: text, calendar: calendars[version]) else {
                throw CombineError.coordinateConflict(
                    coordinate: path, files: [versions.file(0), versions.file(version)],
                    detail:
                        "coordinate \(path) has units \"\(text)\" (calendar \(calendars[version] ?? "standard")) in \(versions.file(version)) and \"\(texts[0] ?? "")\" in \(versions.file(0)); they differ and are not CF time units zarrmount can convert (months and years have no fixed length), so the values cannot share one axis"
                )
            }
            parsed.append(units)
        }
        let target = parsed[0]
        if let other = parsed.indices.first(where: { parsed[$0].calendar != target.calendar }) {
            // Standard and proleptic Gregorian agree from 1582-10-15 on; other pairs never do.
            let clash = parsed.indices.first { parsed[$0].calendar != target.calendar && !parsed[$0].calendar.agreesFromTheReform(with: target.calendar) }
            let early = clash == nil ? versions.indices.first { !instantsFromTheReform(versions[$0], parsed[$0]) } : nil
            if clash != nil || early != nil {
                let odd = clash ?? other
                let why =
                    early.map { ", and \(versions.file($0)) holds instants before 1582-10-15, where the two differ" }
                    ?? "; instants of different calendars cannot share one axis"
                throw CombineError.coordinateConflict(
                    coordinate: path, files: [versions.file(0), versions.file(odd)],
                    detail:
                        "coordinate \(path) uses the \(target.calendar.rawValue) calendar in \(versions.file(0)) but the \(parsed[odd].calendar.rawValue) calendar in \(versions.file(odd))\(why). Combine the files of each calendar separately"
                )
            }
        }
        let dtype = versions[0].dtype
        // A file's fill value stands for no instant: it stays the fill value (the files agree on
        // it, rule 5) instead of being shifted into a date.
        let targetMarker = missingMarkers(versions[0]).first
        let integerMarker = targetMarker.flatMap { Int64(exactly: $0) }
        let exact =
            versions.indices.allSatisfy { isInteger(versions[$0].dtype) }
            && parsed.allSatisfy { CFTimeConversion(from: $0, to: target).isExactForIntegers }
        var integers: [Int64] = []
        var doubles: [Double] = []
        for version in versions.indices {
            let array = versions[version]
            guard case .inline(let chunk) = array.manifest[0] else { return nil }
            guard let count = valueCount(array) else { return nil }
            let conversion = CFTimeConversion(from: parsed[version], to: target)
            let markers = missingMarkers(array)
            if exact {
                guard let values = NumericValues.integers(chunk, dtype: array.dtype, count: count) else { return nil }
                for value in values {
                    if let integerMarker, markers.contains(Double(value)) {
                        integers.append(integerMarker)
                        continue
                    }
                    guard let converted = conversion.convert(value) else {
                        throw CombineError.coordinateConflict(
                            coordinate: path, files: [versions.file(version)],
                            detail: "coordinate \(path): value \(value) of \(versions.file(version)) overflows when re-encoded in \(target.text)")
                    }
                    integers.append(converted)
                }
            } else {
                guard let values = NumericValues.doubles(chunk, dtype: array.dtype, count: count) else { return nil }
                doubles += values.map { markers.contains($0) ? targetMarker ?? .nan : conversion.convert($0) }
            }
        }
        if exact, let encoded = NumericValues.encode(integers, as: dtype) {
            return (encoded, dtype, "\(path): values of \(versions.indices.count) files re-encoded from their own units into \(target.text)")
        }
        let values = exact ? integers.map(Double.init) : doubles
        let float64 = ZarrDataType.float(size: 8)
        let reason =
            isInteger(dtype)
            ? "the shifts between the files' units are not whole \(target.unit.rawValue) in \(dtype.v2String)"
            : "\(dtype.v2String) would round the shifted values"
        let stored = dtype == float64 ? "" : " and stored as float64 (\(reason))"
        return (
            NumericValues.encode(values), float64,
            "\(path): values of \(versions.indices.count) files re-encoded from their own units into \(target.text)\(stored)"
        )
    }
}

extension CombineRules {
    static func isInteger(_ dtype: ZarrDataType) -> Bool { dtype.kind == .signed || dtype.kind == .unsigned }

    /// Whether every instant an inline time variable holds (not its missing values), and the
    /// reference each counts from, is on or after 1582-10-15, where the standard and proleptic
    /// Gregorian calendars agree.
    static func instantsFromTheReform(_ array: borrowing VirtualArray, _ units: CFTimeUnits) -> Bool {
        guard case .inline(let chunk) = array.manifest[0], let count = valueCount(array),
            let values = NumericValues.doubles(chunk, dtype: array.dtype, count: count)
        else { return false }
        let markers = missingMarkers(array)
        return values.allSatisfy { value in value.isNaN || markers.contains(value) || units.isFromTheReform(value) }
    }

    /// A coordinate in the same units that files store as different numbers (int32 in some,
    /// float64 in others: a writer changed): every file's values in one type, int64 when all are
    /// integers, else float64; nil when the types agree. Values stay exact: an int64 beyond
    /// float64's 2^53 is an error, not a rounded instant.
    static func widenedNumbers(_ versions: Combiner.ArrayVersions) throws -> (bytes: [UInt8], dtype: ZarrDataType, note: String)? {
        let first = versions[0].dtype
        guard let other = versions.indices.first(where: { versions[$0].dtype != first }) else { return nil }
        let allIntegers = versions.indices.allSatisfy { isInteger(versions[$0].dtype) }
        var integers: [Int64] = []
        var doubles: [Double] = []
        for version in versions.indices {
            let array = versions[version]
            guard case .inline(let chunk) = array.manifest[0], let count = valueCount(array) else { return nil }
            if let values = NumericValues.integers(chunk, dtype: array.dtype, count: count) {
                if allIntegers {
                    integers += values
                    continue
                }
                if let inexact = values.first(where: { Int64(exactly: Double($0)) != $0 }) {
                    throw CombineError.variableDisagrees(
                        variable: array.path, files: [versions.file(0), versions.file(version)],
                        detail:
                            "variable \(array.path) is stored as \(first.v2String) in \(versions.file(0)) but \(array.dtype.v2String) in \(versions.file(version)), and its value \(inexact) in \(versions.file(version)) has no exact float64 to serve both as. Leave the variable out with --drop-variables \(array.path)"
                    )
                }
                doubles += values.map(Double.init)
            } else if let values = NumericValues.doubles(chunk, dtype: array.dtype, count: count) {
                doubles += values
            } else {
                return nil
            }
        }
        let served: ZarrDataType = allIntegers ? .integer(size: 8, signed: true) : .float(size: 8)
        let bytes = allIntegers ? NumericValues.encode(integers, as: served) : NumericValues.encode(doubles)
        guard let bytes else { return nil }
        return (
            bytes, served,
            "\(versions[0].path): stored as \(first.v2String) in \(versions.file(0)) but \(versions[other].dtype.v2String) in \(versions.file(other)); served as \(served.v2String), every value exact"
        )
    }

    /// The values a file marks as missing (its `_FillValue`, then its `missing_value`s), as
    /// xarray masks them.
    static func missingMarkers(_ array: borrowing VirtualArray) -> [Double] {
        var markers: [Double] = []
        if let fill = array.fillValue.doubleValue { markers.append(fill) }
        if let missing = array.attributes.first(where: { $0.0 == "missing_value" })?.1 {
            markers += (missing.arrayValue ?? [missing]).compactMap(\.doubleValue)
        }
        return markers
    }
}

/// Numbers in a chunk's stored encoding.
public enum NumericValues {
    static func rawWord(_ bytes: [UInt8], at index: Int, size: Int, bigEndian: Bool) -> UInt64 {
        var bits: UInt64 = 0
        for i in 0..<size {
            let byte = bytes[index * size + (bigEndian ? size - 1 - i : i)]
            bits |= UInt64(byte) << UInt64(8 * i)
        }
        return bits
    }

    static func integers(_ bytes: [UInt8], dtype: ZarrDataType, count: Int) -> [Int64]? {
        let size = dtype.itemSize
        guard dtype.kind == .signed || dtype.kind == .unsigned, [1, 2, 4, 8].contains(size), bytes.count >= count * size else { return nil }
        return (0..<count).map { index in
            let bits = rawWord(bytes, at: index, size: size, bigEndian: dtype.bigEndian)
            if dtype.kind == .unsigned { return Int64(bitPattern: bits) }
            let shift = UInt64(64 - 8 * size)
            return Int64(bitPattern: bits << shift) >> Int64(shift)
        }
    }

    public static func doubles(_ bytes: [UInt8], dtype: ZarrDataType, count: Int) -> [Double]? {
        if dtype.kind == .float {
            let size = dtype.itemSize
            guard size == 4 || size == 8, bytes.count >= count * size else { return nil }
            return (0..<count).map { index in
                let bits = rawWord(bytes, at: index, size: size, bigEndian: dtype.bigEndian)
                return size == 4 ? Double(Float(bitPattern: UInt32(bits))) : Double(bitPattern: bits)
            }
        }
        return integers(bytes, dtype: dtype, count: count)?.map(Double.init)
    }

    /// Integers in `dtype`'s encoding, or nil when one does not fit.
    static func encode(_ values: [Int64], as dtype: ZarrDataType) -> [UInt8]? {
        let size = dtype.itemSize
        guard dtype.kind == .signed || dtype.kind == .unsigned, [1, 2, 4, 8].contains(size) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * size)
        for value in values {
            if size < 8 {
                let bits = 8 * size
                let fits = dtype.kind == .signed ? (value >= -(1 << (bits - 1)) && value < (1 << (bits - 1))) : (value >= 0 && value < (1 << bits))
                guard fits else { return nil }
            } else if dtype.kind == .unsigned, value < 0 {
                return nil
            }
            let word = UInt64(bitPattern: value)
            for i in 0..<size {
                let shift = dtype.bigEndian ? size - 1 - i : i
                bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(8 * shift)))
            }
        }
        return bytes
    }

    /// Little-endian float64.
    static func encode(_ values: [Double]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 8)
        for value in values {
            let word = value.bitPattern
            for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(8 * i))) }
        }
        return bytes
    }
}
