import ByteSource
import JSONValue
/// The machine-readable description of a parsed file (`zarrmount inspect --json`).
public enum InspectionReport {
    public static func json(_ info: HDF5FileInfo, file: String, includeChunks: Bool) -> JSON {
        let resolve: (UInt64) -> String? = { info.pathsByAddress[$0] }
        var top: [(String, JSON)] = [
            ("file", .string(file)),
            ("size", .uint(info.size)),
            ("superblock_version", .int(Int64(info.superblock.version))),
            ("offset_size", .int(Int64(info.superblock.offsetSize))),
            ("length_size", .int(Int64(info.superblock.lengthSize))),
            ("base_address", .uint(info.superblock.position)),
        ]
        top.append(
            (
                "groups",
                .array(
                    info.groups.map { group in
                        var pairs: [(String, JSON)] = [
                            ("path", .string(group.path)),
                            ("attributes", attributes(group.attributes, resolve: resolve)),
                            (
                                "links",
                                .array(
                                    group.links.sorted { $0.name < $1.name }.map { link in
                                        link_(link, parent: group.path, resolve: resolve)
                                    })
                            ),
                        ]
                        if let error = group.error { pairs.append(("error", .string(error.description))) }
                        return .object(pairs)
                    })
            ))
        top.append(("datasets", .array(info.datasets.map { dataset($0, includeChunks: includeChunks, resolve: resolve) })))
        top.append(
            (
                "datatypes",
                .array(
                    info.datatypes.map { type in
                        var pairs: [(String, JSON)] = [("path", .string(type.path))]
                        if let datatype = type.datatype { pairs.append(("type", describe(datatype))) }
                        if let error = type.error { pairs.append(("error", .string(error.description))) }
                        return .object(pairs)
                    })
            ))
        return .object(top)
    }

    private static func link_(_ link: Link, parent: String, resolve: (UInt64) -> String?) -> JSON {
        var pairs: [(String, JSON)] = [("name", .string(link.name))]
        switch link.target {
        case .hard(let address):
            pairs.append(("kind", .string("hard")))
            pairs.append(("path", resolve(address).map(JSON.string) ?? .null))
        case .soft(let path):
            pairs.append(("kind", .string("soft")))
            pairs.append(("target", .string(path)))
        case .external(let file, let path):
            pairs.append(("kind", .string("external")))
            pairs.append(("file", .string(file)))
            pairs.append(("target", .string(path)))
        case .userDefined(let type):
            pairs.append(("kind", .string("user_defined")))
            pairs.append(("type", .int(Int64(type))))
        }
        return .object(pairs)
    }

    static func dataset(_ dataset: DatasetInfo, includeChunks: Bool, resolve: (UInt64) -> String?) -> JSON {
        var pairs: [(String, JSON)] = [("path", .string(dataset.path))]
        if !dataset.aliases.isEmpty { pairs.append(("aliases", .array(dataset.aliases.map(JSON.string)))) }
        if let type = dataset.datatype {
            pairs.append(("dtype", .string(type.numpyDtype)))
            pairs.append(("type", describe(type)))
        }
        if let space = dataset.dataspace {
            pairs.append(("space", .string(space.kind.rawValue)))
            switch space.kind {
            case .null:
                pairs.append(("shape", .null))
                pairs.append(("max_shape", .null))
            default:
                pairs.append(("shape", .array(space.dimensions.map(JSON.uint))))
                pairs.append(("max_shape", .array(space.maxDimensions.map { $0.map(JSON.uint) ?? .null })))
            }
        }
        if let layout = dataset.layout {
            pairs.append(("layout", .string(layout.className)))
            if case .chunked(let chunked) = layout {
                pairs.append(("chunk_shape", .array(chunked.chunkShape.map(JSON.uint))))
                pairs.append(("chunk_index", .string(chunked.index.name)))
            } else {
                pairs.append(("chunk_shape", .null))
                pairs.append(("chunk_index", .null))
            }
        }
        pairs.append(
            (
                "filters",
                .array(
                    dataset.filters.map { filter in
                        .object([
                            ("id", .int(Int64(filter.id))), ("name", .string(filter.name)), ("flags", .int(Int64(filter.flags))),
                            ("client_data", .array(filter.clientData.map { .uint(UInt64($0)) })),
                        ])
                    })
            ))
        var fill: [(String, JSON)] = [
            ("status", .string(dataset.fillValue.status.rawValue)),
            ("alloc_time", .string(dataset.fillValue.allocationTime.rawValue)),
            ("fill_time", .string(dataset.fillValue.writeTime.rawValue)),
            // As libhdf5 gives it: numbers of a type of their own converted to the standard type
            // of their size and byte order (the fill is stored in the dataset's type).
            ("hex", dataset.fillValue.bytes.map { bytes in .string(hex(dataset.datatype?.standardBytes(bytes) ?? bytes)) } ?? .null),
        ]
        if let bytes = dataset.fillValue.bytes, let type = dataset.datatype, !type.isVariableLength,
            let value = try? simpleValue(bytes, type: type)
        {
            fill.append(("value", json(value, resolve: resolve)))
        }
        pairs.append(("fill_value", .object(fill)))
        pairs.append(("attributes", attributes(dataset.attributes, resolve: resolve)))
        if let layout = dataset.layout {
            switch layout {
            case .compact(let bytes):
                pairs.append(("num_chunks", .int(1)))
                if includeChunks {
                    let rank = dataset.dataspace?.dimensions.count ?? 0
                    pairs.append(
                        (
                            "chunks",
                            .array([
                                .object([
                                    ("coords", .array([JSON](repeating: .uint(0), count: rank))),
                                    ("size", .int(Int64(bytes.count))), ("inline", .bool(true)),
                                ])
                            ])
                        ))
                }
            default:
                if let table = dataset.chunks {
                    pairs.append(("num_chunks", .int(Int64(table.count))))
                    if includeChunks {
                        var chunks: [JSON] = []
                        chunks.reserveCapacity(table.count)
                        for i in 0..<table.count {
                            chunks.append(
                                .object([
                                    ("coords", .array(table.coordinates(of: i).map(JSON.uint))),
                                    ("offset", .uint(table.offsets[i])),
                                    ("size", .uint(table.sizes[i])),
                                    ("filter_mask", .uint(UInt64(table.filterMasks[i]))),
                                ]))
                        }
                        pairs.append(("chunks", .array(chunks)))
                    }
                }
            }
        }
        if !dataset.externalFiles.isEmpty {
            pairs.append(
                (
                    "external",
                    .array(
                        dataset.externalFiles.map { segment in
                            .object([
                                ("name", .string(segment.name)), ("offset", .uint(segment.offset)),
                                ("size", segment.size.map(JSON.uint) ?? .null),
                            ])
                        })
                ))
        }
        if let error = dataset.error { pairs.append(("error", .string(error.description))) }
        return .object(pairs)
    }

    static func attributes(_ list: [Attribute], resolve: (UInt64) -> String?) -> JSON {
        .object(
            list.map { attribute in
                let scalar = attribute.dataspace.kind != .simple
                let value: JSON
                if attribute.dataspace.kind == .null {
                    value = .null
                } else if scalar {
                    value = attribute.values.first.map { json($0, resolve: resolve) } ?? .null
                } else {
                    value = nested(attribute.values.map { json($0, resolve: resolve) }, shape: attribute.dataspace.dimensions)
                }
                return (
                    attribute.name,
                    .object([
                        ("dtype", .string(attribute.datatype.numpyDtype)),
                        ("type", describe(attribute.datatype)),
                        ("shape", scalar ? .null : .array(attribute.dataspace.dimensions.map(JSON.uint))),
                        ("value", value),
                        ("hex", attribute.datatype.isVariableLength ? .null : .string(hex(attribute.raw))),
                    ])
                )
            })
    }

    private static func nested(_ flat: [JSON], shape: [UInt64]) -> JSON {
        guard shape.count > 1, let first = shape.first, first > 0 else { return .array(flat) }
        let step = flat.count / Int(first)
        guard step > 0 else { return .array(flat) }
        return .array((0..<Int(first)).map { i in nested(Array(flat[(i * step)..<((i + 1) * step)]), shape: Array(shape.dropFirst())) })
    }

    static func json(_ value: Value, resolve: (UInt64) -> String?) -> JSON {
        switch value {
        case .integer(let v): return .int(v)
        case .unsigned(let v): return .uint(v)
        case .float(let v): return .double(v)
        case .string(let v): return .string(v)
        case .bytes(let v): return .object([("hex", .string(hex(v)))])
        case .objectReference(let address): return .object([("object_ref", resolve(address).map(JSON.string) ?? .uint(address))])
        case .regionReference(let address): return .object([("region_ref", resolve(address).map(JSON.string) ?? .uint(address))])
        case .nullReference: return .null
        case .list(let items): return .array(items.map { json($0, resolve: resolve) })
        case .compound(let fields): return .object(fields.map { ($0.name, json($0.value, resolve: resolve)) })
        }
    }

    /// Decodes a fixed-size value without heap access (fill values).
    public static func simpleValue(_ bytes: [UInt8], type: Datatype) throws -> Value? {
        switch type {
        case .integer, .float:
            guard bytes.count >= type.size else { return nil }
            return type.number(bytes[0..<type.size])
        default:
            return .bytes(bytes)
        }
    }

    public static func describe(_ type: Datatype) -> JSON {
        func order(_ o: ByteOrder) -> JSON { .string(o.rawValue) }
        switch type {
        case .integer(let size, let o, let signed, let offset, let precision):
            return .object([
                ("class", .string("integer")), ("size", .int(Int64(size))), ("order", order(o)),
                ("signed", .bool(signed)), ("precision", .int(Int64(precision))), ("offset", .int(Int64(offset))),
            ])
        case .float(let size, let o, let offset, let precision, let layout):
            return .object([
                ("class", .string("float")), ("size", .int(Int64(size))), ("order", order(o)),
                ("precision", .int(Int64(precision))), ("offset", .int(Int64(offset))),
                (
                    "fields",
                    .object([
                        ("sign_pos", .int(Int64(layout.signPosition))),
                        ("exp_pos", .int(Int64(layout.exponentPosition))),
                        ("exp_size", .int(Int64(layout.exponentSize))),
                        ("mant_pos", .int(Int64(layout.mantissaPosition))),
                        ("mant_size", .int(Int64(layout.mantissaSize))),
                    ])
                ),
                ("ebias", .uint(UInt64(layout.exponentBias))),
            ])
        case .time(let size, let o, let precision):
            return .object([("class", .string("time")), ("size", .int(Int64(size))), ("order", order(o)), ("precision", .int(Int64(precision)))])
        case .string(let size, let padding, let charset):
            return .object([
                ("class", .string("string")), ("size", .int(Int64(size))), ("variable", .bool(false)),
                ("cset", .string(charset.rawValue)), ("strpad", .string(padding.rawValue)),
            ])
        case .variableLengthString(let size, let padding, let charset):
            return .object([
                ("class", .string("string")), ("size", .int(Int64(size))), ("variable", .bool(true)),
                ("cset", .string(charset.rawValue)), ("strpad", .string(padding.rawValue)),
            ])
        case .bitfield(let size, let o, let offset, let precision):
            return .object([
                ("class", .string("bitfield")), ("size", .int(Int64(size))), ("order", order(o)),
                ("precision", .int(Int64(precision))), ("offset", .int(Int64(offset))),
            ])
        case .opaque(let size, let tag):
            return .object([("class", .string("opaque")), ("size", .int(Int64(size))), ("tag", .string(tag))])
        case .compound(let size, let members):
            return .object([
                ("class", .string("compound")), ("size", .int(Int64(size))),
                ("members", .array(members.map { .object([("name", .string($0.name)), ("offset", .int(Int64($0.offset))), ("type", describe($0.type))]) })),
            ])
        case .reference(let size, let kind):
            return .object([("class", .string("reference")), ("size", .int(Int64(size))), ("ref_kind", .string(kind.rawValue))])
        case .enumeration(let size, let base, let names, let values):
            let decoded: [(String, JSON)] = zip(names, values).map { name, raw in
                (name, (try? simpleValue(raw, type: base)).flatMap { $0 }.map { json($0, resolve: { _ in nil }) } ?? .null)
            }
            return .object([("class", .string("enum")), ("size", .int(Int64(size))), ("base", describe(base)), ("members", .object(decoded))])
        case .variableLengthSequence(let size, let base):
            return .object([("class", .string("vlen")), ("size", .int(Int64(size))), ("base", describe(base))])
        case .array(let size, let dims, let base):
            return .object([
                ("class", .string("array")), ("size", .int(Int64(size))), ("dims", .array(dims.map { .int(Int64($0)) })),
                ("base", describe(base)),
            ])
        }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var out = ""
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 0x0f)])
    }
    return out
}
