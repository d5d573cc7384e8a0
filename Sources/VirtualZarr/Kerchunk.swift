import Foundation
import HDF5Metadata
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

public struct ReferenceError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

extension KerchunkReferences {
    /// Reads kerchunk references (version 0: a flat mapping; version 1: `refs` with optional
    /// `templates` and `gen`) into a virtual dataset. Object sizes are unknown (0) until the
    /// store is asked; whole-object references (`[url]`) are not supported.
    public static func read(_ text: String, name: String = "references") throws -> VirtualDataset {
        let document: JSON
        do { document = try JSON.parse(text) } catch { throw ReferenceError(description: "\(name): \(error)") }
        guard let top = document.objectValue else { throw ReferenceError(description: "\(name): expected a JSON object") }
        var refs: [(String, JSON)]
        var templates: [String: String] = [:]
        if let version = document["version"], version.int64Value == 1 {
            refs = document["refs"]?.objectValue ?? []
            for (key, value) in document["templates"]?.objectValue ?? [] {
                guard let text = value.stringValue else { throw ReferenceError(description: "\(name): template \(key) is not a string") }
                templates[key] = text
            }
            for generator in document["gen"]?.arrayValue ?? [] {
                refs += try expand(generator, templates: templates, name: name)
            }
        } else if document["version"] != nil {
            throw ReferenceError(description: "\(name): reference version \(document["version"]!.rendered()) is not supported (0 or 1)")
        } else {
            refs = top
        }

        var metadata: [String: JSON] = [:]
        var chunkRefs: [(key: String, value: JSON)] = []
        for (key, value) in refs {
            let leaf = key.split(separator: "/").last.map(String.init) ?? key
            if leaf.hasPrefix(".z") {
                let text: String
                if let string = value.stringValue { text = string } else { text = value.rendered() }
                do { metadata[key] = try JSON.parse(text) } catch {
                    throw ReferenceError(description: "\(name): \(key): \(error)")
                }
            } else {
                chunkRefs.append((key, value))
            }
        }

        var dataset = VirtualDataset(groups: [])
        var objectIndex: [String: UInt32] = [:]
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
        for (key, value) in chunkRefs {
            guard let slash = key.lastIndex(of: "/") else { continue }
            let path = String(key[..<slash])
            let chunkName = String(key[key.index(after: slash)...])
            guard let arrayIndex = arraysByPath[path] else { continue }
            let array = dataset.arrays[arrayIndex]
            let coordinates = chunkName == "0" && array.shape.isEmpty ? [] : chunkName.split(separator: ".").map { Int($0) ?? -1 }
            guard let linear = array.manifest.linearIndex(coordinates) else {
                throw ReferenceError(description: "\(name): \(key) is outside the chunk grid \(array.manifest.gridShape)")
            }
            let entry: ChunkEntry
            switch value {
            case .string(let text):
                if text.hasPrefix("base64:") {
                    guard let data = Data(base64Encoded: String(text.dropFirst(7))) else {
                        throw ReferenceError(description: "\(name): \(key) has invalid base64 data")
                    }
                    entry = .inline([UInt8](data))
                } else {
                    entry = .inline(Array(text.utf8))
                }
            case .array(let parts):
                guard let url = parts.first?.stringValue.map({ substitute($0, templates) }) else {
                    throw ReferenceError(description: "\(name): \(key) has no URL")
                }
                guard parts.count == 3, let offset = parts[1].uint64Value, let length = parts[2].uint64Value else {
                    throw ReferenceError(description: "\(name): \(key) references a whole object; only [url, offset, length] is supported")
                }
                let object: UInt32
                if let existing = objectIndex[url] { object = existing } else {
                    object = UInt32(dataset.objects.count)
                    objectIndex[url] = object
                    dataset.objects.append(ObjectInfo(url: url, size: 0))
                }
                entry = .reference(object: object, offset: offset, length: length)
            default:
                throw ReferenceError(description: "\(name): \(key) is neither data nor a reference")
            }
            dataset.arrays[arrayIndex].manifest[linear] = entry
        }
        return dataset
    }

    static func substitute(_ text: String, _ templates: [String: String]) -> String {
        var result = text
        for (key, value) in templates { result = result.replacingOccurrences(of: "{{\(key)}}", with: value) }
        return result
    }

    /// Expands one `gen` entry: every combination of its dimensions, `{{name}}` substituted.
    static func expand(_ generator: JSON, templates: [String: String], name: String) throws -> [(String, JSON)] {
        guard let key = generator["key"]?.stringValue, let url = generator["url"]?.stringValue,
              let dimensions = generator["dimensions"]?.objectValue else {
            throw ReferenceError(description: "\(name): a gen entry needs key, url and dimensions")
        }
        var axes: [(String, [Int64])] = []
        for (dimension, spec) in dimensions {
            if let list = spec.arrayValue {
                axes.append((dimension, list.compactMap(\.int64Value)))
            } else if let stop = spec["stop"]?.int64Value {
                let start = spec["start"]?.int64Value ?? 0
                let step = spec["step"]?.int64Value ?? 1
                guard step > 0, stop - start <= 100_000_000 else {
                    throw ReferenceError(description: "\(name): gen dimension \(dimension) has an invalid range")
                }
                axes.append((dimension, Array(stride(from: start, to: stop, by: Int(step)))))
            } else {
                throw ReferenceError(description: "\(name): gen dimension \(dimension) needs a list or start/stop/step")
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
                    throw ReferenceError(description: "\(name): gen offset/length must be plain {{name}} substitutions giving integers")
                }
                parts += [.uint(o), .uint(l)]
            }
            if expandedKey.contains("{{") || parts.contains(where: { $0.stringValue?.contains("{{") ?? false }) {
                throw ReferenceError(description: "\(name): gen template \(key) uses expressions; only {{name}} substitution is supported")
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
        func fail(_ message: String) -> ReferenceError { ReferenceError(description: "\(name): \(path)/.zarray: \(message)") }
        guard let shapeList = meta["shape"]?.arrayValue, let chunkList = meta["chunks"]?.arrayValue, let dtypeJSON = meta["dtype"] else {
            throw fail("needs shape, chunks and dtype")
        }
        let shape = shapeList.compactMap(\.uint64Value)
        let chunks = chunkList.compactMap(\.uint64Value)
        guard shape.count == shapeList.count, chunks.count == shape.count, chunks.allSatisfy({ $0 > 0 }) else { throw fail("invalid shape or chunks") }
        let dtype = try dataType(v2: dtypeJSON, fail: fail)
        var codecs: [Codec] = []
        for filter in meta["filters"]?.arrayValue ?? [] { codecs.append(Codec(numcodecs: filter)) }
        if let compressor = meta["compressor"], compressor != .null { codecs.append(Codec(numcodecs: compressor)) }
        let dimensions = attributes.first { $0.0 == "_ARRAY_DIMENSIONS" }?.1.arrayValue?.compactMap(\.stringValue)
            ?? shape.indices.map { "dim_\($0)" }
        return VirtualArray(path: path, dtype: dtype, shape: shape, chunkShape: chunks,
                            codecs: codecs.filter { if case .other(let c) = $0, c["id"]?.stringValue == "vlen-utf8" { return false }; return true },
                            fillValue: meta["fill_value"] ?? .null, fillBytes: nil, dimensionNames: dimensions,
                            attributes: attributes.filter { $0.0 != "_ARRAY_DIMENSIONS" },
                            manifest: ChunkManifest(gridShape: NetCDFMapping.grid(shape, chunks)), origin: "\(name):\(path)")
    }

    static func dataType(v2 json: JSON, fail: (String) -> ReferenceError) throws -> ZarrDataType {
        guard let text = json.stringValue else {
            return ZarrDataType(kind: .structured, itemSize: 0, bigEndian: false, v2: json, v3: nil)
        }
        let order = text.first ?? "|"
        let kind = text.dropFirst().first ?? "?"
        let size = Int(text.dropFirst(2)) ?? 0
        let big = order == ">"
        switch kind {
        case "f": return ZarrDataType(kind: .float, itemSize: size, bigEndian: big, v2: json, v3: .string("float\(size * 8)"))
        case "i": return ZarrDataType(kind: .signed, itemSize: size, bigEndian: big, v2: json, v3: .string("int\(size * 8)"))
        case "u": return ZarrDataType(kind: .unsigned, itemSize: size, bigEndian: big, v2: json, v3: .string("uint\(size * 8)"))
        case "b": return ZarrDataType(kind: .bool, itemSize: 1, bigEndian: false, v2: json, v3: .string("bool"))
        case "S": return ZarrDataType(kind: .fixedBytes, itemSize: size, bigEndian: false, v2: json,
                                      v3: .object([("name", .string("null_terminated_bytes")), ("configuration", .object([("length_bytes", .int(Int64(size)))]))]))
        case "O": return ZarrDataType(kind: .variableString, itemSize: 0, bigEndian: false, v2: json, v3: .string("string"))
        case "V": return ZarrDataType(kind: .opaque, itemSize: size, bigEndian: false, v2: json, v3: nil)
        default: throw fail("dtype \(text) is not supported")
        }
    }
}
