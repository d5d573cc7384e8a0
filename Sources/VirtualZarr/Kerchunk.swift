import Foundation
import JSONValue

/// kerchunk reference files (version 1): Zarr v2 metadata as JSON strings and, per chunk,
/// `[url, offset, length]` or inline `base64:` data.
public enum KerchunkReferences {
    /// A deterministic document: keys sorted, metadata compact, consolidated `.zmetadata`
    /// included (zarr-python 3 needs it to open sub-groups through fsspec references).
    public static func write(_ dataset: VirtualDataset) throws -> String {
        let store = ZarrStore(dataset, format: .v2)
        var refs: [(String, JSON)] = []
        for (key, document) in try store.metadataDocuments() {
            refs.append((key, .string(document.rendered())))
        }
        try store.forEachChunk { key, entry in
            switch entry {
            case .missing: break
            case .inline(let bytes):
                refs.append((key, .string("base64:" + Data(bytes).base64EncodedString())))
            case .reference(let object, let offset, let length):
                refs.append((key, .array([.string(dataset.objects[Int(object)].url), .uint(offset), .uint(length)])))
            }
        }
        refs.sort { $0.0 < $1.0 }
        return JSON.object([("version", .int(1)), ("refs", .object(refs))]).rendered()
    }
}

/// Why a kerchunk reference document cannot be served; `file` names the document.
public enum ReferenceError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Not JSON, or not an object of references.
    case invalidDocument(file: String, reason: String)
    /// A reference version other than 0 or 1.
    case unsupportedVersion(file: String, version: String)
    /// One key's entry (a chunk reference, inline data or a template) that cannot be read.
    case invalidEntry(file: String, key: String, reason: String)
    /// A `gen` entry zarrmount cannot expand.
    case invalidGenerator(file: String, reason: String)
    /// An array's `.zarray` that cannot be served.
    case invalidArrayMetadata(file: String, path: String, reason: String)
    /// More distinct objects than a manifest indexes.
    case tooManyObjects(file: String, max: UInt32)

    public var description: String {
        switch self {
        case .invalidDocument(let file, let reason): "\(file): \(reason)"
        case .unsupportedVersion(let file, let version): "\(file): reference version \(version) is not supported (0 or 1)"
        case .invalidEntry(let file, let key, let reason): "\(file): \(key)\(reason.hasPrefix(":") ? "" : " ")\(reason)"
        case .invalidGenerator(let file, let reason): "\(file): \(reason)"
        case .invalidArrayMetadata(let file, let path, let reason): "\(file): \(path)/.zarray: \(reason)"
        case .tooManyObjects(let file, let max): "\(file): more than \(max) objects"
        }
    }
}

/// What to do with a reference key that cannot become a file name of the mounted tree.
public enum BadKeyPolicy: Sendable {
    /// Stop reading, naming the key.
    case fail
    /// Leave out the array (or group) the key belongs to, with a warning naming the key.
    case skip
}

/// Why a reference key cannot name a file of the mounted tree, which the kernel, readers and
/// other keys constrain: one NUL, `..` or 300-byte name would truncate, escape or break listing.
public enum ReferenceKeyProblem: Equatable, Sendable, CustomStringConvertible {
    case containsNUL
    case leadingSlash
    case emptyComponent
    case dotComponent(String)
    case componentTooLong(bytes: Int)
    case duplicate
    case sameChunkAs(String)
    case arrayAndGroup
    case insideArray(String)
    case invalidChunkName

    public static let maxComponentBytes = 255

    public var description: String {
        switch self {
        case .containsNUL: return "contains a NUL byte"
        case .leadingSlash: return "starts with /"
        case .emptyComponent: return "has an empty path component (//, or a trailing /)"
        case .dotComponent(let component): return "has a \(component) path component"
        case .componentTooLong(let bytes): return "has a \(bytes)-byte path component (file names have at most \(Self.maxComponentBytes))"
        case .duplicate: return "appears twice"
        case .sameChunkAs(let other): return "names the same chunk as \(other)"
        case .arrayAndGroup: return "makes its path both an array (.zarray) and a group (.zgroup)"
        case .insideArray(let array): return "puts a node inside the array \(array)"
        case .invalidChunkName: return "is not a chunk name (dot-separated decimal grid coordinates) nor a .z* metadata key"
        }
    }

    /// The problem of one key on its own, or nil.
    public static func check(_ key: String) -> ReferenceKeyProblem? {
        if key.utf8.contains(0) { return .containsNUL }
        if key.hasPrefix("/") { return .leadingSlash }
        for component in key.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty { return .emptyComponent }
            if component == "." || component == ".." { return .dotComponent(String(component)) }
            if component.utf8.count > maxComponentBytes { return .componentTooLong(bytes: component.utf8.count) }
        }
        return nil
    }
}

public struct ReferenceKeyError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var key: String
    public var problem: ReferenceKeyProblem

    public var description: String {
        "\(file): key \(Self.quoted(key)) \(problem); fix the reference file, or mount with --on-error skip to leave that array out"
    }

    /// The key as JSON would spell it, so NULs and control characters stay visible, cut to 120 characters.
    public static func quoted(_ key: String) -> String {
        var rendered = JSON.string(key).rendered()
        if rendered.count > 120 { rendered = String(rendered.prefix(100)) + "…\" (\(key.utf8.count) bytes)" }
        return rendered
    }
}

/// References read from a file, with, for each object, the first key that names it (for errors).
public struct ReferenceContents: Sendable {
    public var dataset: VirtualDataset
    public var firstKeys: [String]
}

extension KerchunkReferences {
    /// Reads kerchunk references (version 0: a flat mapping; version 1: `refs` with optional
    /// `templates` and `gen`) into a virtual dataset. Object sizes are unknown (0) until the
    /// store is asked; whole-object references (`[url]`) are not supported.
    public static func read(_ text: String, name: String = "references", badKeys: BadKeyPolicy = .fail) throws -> VirtualDataset {
        try contents(text, name: name, badKeys: badKeys).dataset
    }

    public static func contents(_ text: String, name: String = "references", badKeys: BadKeyPolicy = .fail) throws -> ReferenceContents {
        let document: JSON
        do { document = try JSON.parse(text) } catch { throw ReferenceError.invalidDocument(file: name, reason: "\(error)") }
        guard let top = document.objectValue else { throw ReferenceError.invalidDocument(file: name, reason: "expected a JSON object") }
        var refs: [(String, JSON)]
        var templates: [String: String] = [:]
        if let version = document["version"], version.int64Value == 1 {
            refs = document["refs"]?.objectValue ?? []
            for (key, value) in document["templates"]?.objectValue ?? [] {
                guard let text = value.stringValue else { throw ReferenceError.invalidEntry(file: name, key: "template \(key)", reason: "is not a string") }
                templates[key] = text
            }
            for generator in document["gen"]?.arrayValue ?? [] {
                refs += try expand(generator, templates: templates, name: name)
            }
        } else if document["version"] != nil {
            throw ReferenceError.unsupportedVersion(file: name, version: document["version"]!.rendered())
        } else {
            refs = top
        }
        var warnings: [String] = []
        refs = try validKeys(refs, name: name, policy: badKeys, warnings: &warnings)

        var metadata: [String: JSON] = [:]
        var chunkRefs: [(key: String, value: JSON)] = []
        for (key, value) in refs {
            let leaf = key.split(separator: "/").last.map(String.init) ?? key
            if leaf.hasPrefix(".z") {
                let text: String
                if let string = value.stringValue { text = string } else { text = value.rendered() }
                do { metadata[key] = try JSON.parse(text) } catch {
                    throw ReferenceError.invalidEntry(file: name, key: key, reason: ": \(error)")
                }
            } else {
                chunkRefs.append((key, value))
            }
        }

        var dataset = VirtualDataset(groups: [])
        var objectIndex: [String: UInt32] = [:]
        var firstKeys: [String] = []
        for key in metadata.keys.sorted() where key == ".zgroup" || key.hasSuffix("/.zgroup") {
            let path = key == ".zgroup" ? "" : String(key.dropLast("/.zgroup".count))
            let attributes = metadata[path.isEmpty ? ".zattrs" : path + "/.zattrs"]?.objectValue ?? []
            dataset.groups.append(VirtualGroup(path: path, attributes: attributes))
        }
        if !dataset.groups.contains(where: { $0.path.isEmpty }) { dataset.groups.insert(VirtualGroup(path: "", attributes: []), at: 0) }

        var arraysByPath: [String: Int] = [:]
        for key in metadata.keys.sorted() where key == ".zarray" || key.hasSuffix("/.zarray") {
            let path = key == ".zarray" ? "" : String(key.dropLast("/.zarray".count))
            let attributes = metadata[path.isEmpty ? ".zattrs" : path + "/.zattrs"]?.objectValue ?? []
            let array = try arrayFromV2(metadata[key]!, path: path, attributes: attributes, name: name)
            arraysByPath[path] = dataset.arrays.count
            dataset.arrays.append(array)
        }
        var orphans: [String] = []
        for (key, value) in chunkRefs {
            let slash = key.lastIndex(of: "/")
            let path = slash.map { String(key[..<$0]) } ?? ""
            let chunkName = slash.map { String(key[key.index(after: $0)...]) } ?? key
            guard let arrayIndex = arraysByPath[path] else {
                orphans.append(key)
                continue
            }
            let array = dataset.arrays[arrayIndex]
            let coordinates =
                chunkName == "0" && array.shape.isEmpty ? [] : chunkName.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) ?? -1 }
            guard let linear = array.manifest.linearIndex(coordinates) else {
                throw ReferenceError.invalidEntry(file: name, key: key, reason: "is outside the chunk grid \(array.manifest.gridShape)")
            }
            let entry: ChunkEntry
            switch value {
            case .string(let text):
                if text.hasPrefix("base64:") {
                    guard let data = Data(base64Encoded: String(text.dropFirst(7))) else {
                        throw ReferenceError.invalidEntry(file: name, key: key, reason: "has invalid base64 data")
                    }
                    entry = .inline([UInt8](data))
                } else {
                    entry = .inline(Array(text.utf8))
                }
            case .array(let parts):
                guard let url = parts.first?.stringValue.map({ substitute($0, templates) }) else {
                    throw ReferenceError.invalidEntry(file: name, key: key, reason: "has no URL")
                }
                guard parts.count == 3 else {
                    throw ReferenceError.invalidEntry(file: name, key: key, reason: "references a whole object; only [url, offset, length] is supported")
                }
                for (field, part) in [("offset", parts[1]), ("length", parts[2])] where part.uint64Value == nil {
                    let negative: Bool
                    switch part {
                    case .int(let value): negative = value < 0;
                    case .double(let value): negative = value < 0;
                    default: negative = false
                    }
                    let what = negative ? "is negative (\(part.rendered()))" : "is not a whole number of bytes (\(part.rendered()))"
                    throw ReferenceError.invalidEntry(file: name, key: key, reason: ": the \(field) \(what)")
                }
                let offset = parts[1].uint64Value!, length = parts[2].uint64Value!
                guard offset.addingReportingOverflow(length).overflow == false else {
                    throw ReferenceError.invalidEntry(file: name, key: key, reason: ": offset \(offset) plus length \(length) is beyond any object")
                }
                let object: UInt32
                if let existing = objectIndex[url] {
                    object = existing
                } else {
                    guard dataset.objects.count < Int(ChunkManifest.maxObjects) else {
                        throw ReferenceError.tooManyObjects(file: name, max: ChunkManifest.maxObjects)
                    }
                    object = UInt32(dataset.objects.count)
                    objectIndex[url] = object
                    dataset.objects.append(ObjectInfo(url: url, size: 0))
                    firstKeys.append(key)
                }
                entry = .reference(object: object, offset: offset, length: length)
            default:
                throw ReferenceError.invalidEntry(file: name, key: key, reason: "is neither data nor a reference")
            }
            dataset.arrays[arrayIndex].manifest[linear] = entry
        }
        if let first = orphans.first {
            warnings.append(
                "\(name): \(orphans.count) key\(orphans.count == 1 ? "" : "s") name no array and are left out (first: \(ReferenceKeyError.quoted(first)))")
        }
        dataset.warnings += warnings
        return ReferenceContents(dataset: dataset, firstKeys: firstKeys)
    }

    /// Checks every key alone and against the others (duplicates, two spellings of one chunk,
    /// an array that is also a group, a node inside an array). Under `.skip`, each bad key's
    /// array or group is left out, with a warning; under `.fail` the first bad key throws.
    static func validKeys(_ refs: [(String, JSON)], name: String, policy: BadKeyPolicy, warnings: inout [String]) throws -> [(String, JSON)] {
        var bad: [(key: String, problem: ReferenceKeyProblem)] = []
        var seen: [String: String] = [:]
        var arrays: Set<String> = [], groups: Set<String> = []
        var names: [String] = []
        for (key, _) in refs {
            if let problem = ReferenceKeyProblem.check(key) { bad.append((key, problem)); continue }
            names.append(key)
            if key == ".zarray" || key.hasSuffix("/.zarray") { arrays.insert(parent(of: key)) }
            if key == ".zgroup" || key.hasSuffix("/.zgroup") { groups.insert(parent(of: key)) }
        }
        let unnameable = bad.count
        for key in names {
            let leaf = key.split(separator: "/").last.map(String.init) ?? key
            var canonical = key
            if !leaf.hasPrefix(".z") {
                let parts = leaf.split(separator: ".", omittingEmptySubsequences: false)
                guard parts.allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { (48...57).contains($0) } }) else {
                    if arrays.contains(parent(of: key)) { bad.append((key, .invalidChunkName)) }
                    continue
                }
                let path = parent(of: key)
                canonical = (path.isEmpty ? "" : path + "/") + parts.map { String(UInt64($0).map(String.init) ?? String($0)) }.joined(separator: ".")
            }
            if let other = seen[canonical] {
                bad.append((key, other == key ? .duplicate : .sameChunkAs(ReferenceKeyError.quoted(other))))
                continue
            }
            seen[canonical] = key
            let path = parent(of: key)
            if key == ".zgroup" || key.hasSuffix("/.zgroup"), arrays.contains(path) { bad.append((key, .arrayAndGroup)); continue }
            var ancestor = path
            while !ancestor.isEmpty {
                ancestor = parent(of: ancestor)
                if arrays.contains(ancestor) { bad.append((key, .insideArray(ancestor.isEmpty ? "/" : ancestor))); break }
            }
        }
        guard let first = bad.first else { return refs }
        if policy == .fail { throw ReferenceKeyError(file: name, key: first.key, problem: first.problem) }
        var dropped: Set<String> = []
        for (index, (key, problem)) in bad.enumerated() {
            // A key that cannot be a name at all has no array to name; drop just that key.
            let path = index < unnameable ? key : parent(of: key)
            dropped.insert(path)
            warnings.append(
                "\(name): key \(ReferenceKeyError.quoted(key)) \(problem); \(path == key ? "left out" : "left out \(path.isEmpty ? "the root array" : path)")")
        }
        return refs.filter { key, _ in
            !dropped.contains(key) && !dropped.contains(parent(of: key)) && !dropped.contains { !$0.isEmpty && key.hasPrefix($0 + "/") }
        }
    }

    static func parent(of key: String) -> String {
        key.lastIndex(of: "/").map { String(key[..<$0]) } ?? ""
    }

    static func substitute(_ text: String, _ templates: [String: String]) -> String {
        var result = text
        for (key, value) in templates { result = result.replacingOccurrences(of: "{{\(key)}}", with: value) }
        return result
    }

    /// Expands one `gen` entry: every combination of its dimensions, `{{name}}` substituted.
    static func expand(_ generator: JSON, templates: [String: String], name: String) throws -> [(String, JSON)] {
        guard let key = generator["key"]?.stringValue, let url = generator["url"]?.stringValue,
            let dimensions = generator["dimensions"]?.objectValue
        else {
            throw ReferenceError.invalidGenerator(file: name, reason: "a gen entry needs key, url and dimensions")
        }
        var axes: [(String, [Int64])] = []
        for (dimension, spec) in dimensions {
            if let list = spec.arrayValue {
                axes.append((dimension, list.compactMap(\.int64Value)))
            } else if let stop = spec["stop"]?.int64Value {
                let start = spec["start"]?.int64Value ?? 0
                let step = spec["step"]?.int64Value ?? 1
                guard step > 0, stop - start <= 100_000_000 else {
                    throw ReferenceError.invalidGenerator(file: name, reason: "gen dimension \(dimension) has an invalid range")
                }
                axes.append((dimension, Array(stride(from: start, to: stop, by: Int(step)))))
            } else {
                throw ReferenceError.invalidGenerator(file: name, reason: "gen dimension \(dimension) needs a list or start/stop/step")
            }
        }
        var out: [(String, JSON)] = []
        var index = [Int](repeating: 0, count: axes.count)
        if axes.contains(where: { $0.1.isEmpty }) { return [] }
        while true {
            var variables = templates
            for (axis, (dimension, values)) in axes.enumerated() { variables[dimension] = String(values[index[axis]]) }
            let expandedKey = substitute(key, variables)
            var parts: [JSON] = [.string(substitute(url, variables))]
            if let offset = generator["offset"]?.stringValue, let length = generator["length"]?.stringValue {
                guard let o = UInt64(substitute(offset, variables)), let l = UInt64(substitute(length, variables)) else {
                    throw ReferenceError.invalidGenerator(file: name, reason: "gen offset/length must be plain {{name}} substitutions giving integers")
                }
                parts += [.uint(o), .uint(l)]
            }
            if expandedKey.contains("{{") || parts.contains(where: { $0.stringValue?.contains("{{") ?? false }) {
                throw ReferenceError.invalidGenerator(file: name, reason: "gen template \(key) uses expressions; only {{name}} substitution is supported")
            }
            out.append((expandedKey, .array(parts)))
            var axis = axes.count - 1
            while axis >= 0 {
                index[axis] += 1
                if index[axis] < axes[axis].1.count { break }
                index[axis] = 0
                axis -= 1
            }
            if axis < 0 { break }
        }
        return out
    }

    static func arrayFromV2(_ meta: JSON, path: String, attributes: [(String, JSON)], name: String) throws -> VirtualArray {
        func fail(_ message: String) -> ReferenceError { .invalidArrayMetadata(file: name, path: path, reason: message) }
        guard let shapeList = meta["shape"]?.arrayValue, let chunkList = meta["chunks"]?.arrayValue, let dtypeJSON = meta["dtype"] else {
            throw fail("needs shape, chunks and dtype")
        }
        let shape = shapeList.compactMap(\.uint64Value)
        let chunks = chunkList.compactMap(\.uint64Value)
        guard shape.count == shapeList.count, chunks.count == shape.count, chunks.allSatisfy({ $0 > 0 }) else { throw fail("invalid shape or chunks") }
        guard ChunkManifest.chunkCount(ChunkManifest.grid(shape, chunks)) != nil else {
            throw fail("its chunk grid \(ChunkManifest.grid(shape, chunks)) has more than \(ChunkManifest.maxChunks) chunks")
        }
        let dtype = try dataType(v2: dtypeJSON, fail: fail)
        var codecs: [Codec] = []
        for filter in meta["filters"]?.arrayValue ?? [] { codecs.append(Codec(numcodecs: filter)) }
        if let compressor = meta["compressor"], compressor != .null { codecs.append(Codec(numcodecs: compressor)) }
        let dimensions =
            attributes.first { $0.0 == "_ARRAY_DIMENSIONS" }?.1.arrayValue?.compactMap(\.stringValue)
            ?? shape.indices.map { "dim_\($0)" }
        return VirtualArray(
            path: path, dtype: dtype, shape: shape, chunkShape: chunks,
            codecs: codecs.filter {
                if case .other(let c) = $0, c["id"]?.stringValue == "vlen-utf8" { return false }; return true
            },
            fillValue: meta["fill_value"] ?? .null, fillBytes: nil, dimensionNames: dimensions,
            attributes: attributes.filter { $0.0 != "_ARRAY_DIMENSIONS" },
            manifest: ChunkManifest(gridShape: ChunkManifest.grid(shape, chunks)), origin: name)
    }

    static func dataType(v2 json: JSON, fail: (String) -> ReferenceError) throws -> ZarrDataType {
        guard let text = json.stringValue else { return .structured(json, size: 0) }
        guard let type = ZarrDataType(v2: text) else { throw fail("dtype \(text) is not supported") }
        return type
    }

}
