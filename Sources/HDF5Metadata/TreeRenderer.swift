/// The human-readable form of `inspect`: a tree of groups and datasets.
public enum TreeRenderer {
    public static func render(_ info: HDF5FileInfo, file: String, includeChunks: Bool) -> String {
        let resolve: (UInt64) -> String? = { info.pathsByAddress[$0] }
        var out = "\(file): HDF5 superblock v\(info.superblock.version), \(info.size) bytes"
        if info.superblock.position > 0 { out += ", user block \(info.superblock.position) bytes" }
        out += "\n"
        var entries: [(String, String)] = []
        for group in info.groups {
            var text = "\(group.path == "/" ? "/" : group.path + "/") (group)\n"
            text += attributeLines(group.attributes, indent: "    ", resolve: resolve)
            for link in group.links.sorted(by: { $0.name < $1.name }) {
                switch link.target {
                case .soft(let path): text += "    \(link.name) -> \(path) (soft link)\n"
                case .external(let file, let path): text += "    \(link.name) -> \(file):\(path) (external link, not followed)\n"
                default: break
                }
            }
            if let error = group.error { text += "    ERROR: \(error)\n" }
            entries.append((group.path, text))
        }
        for dataset in info.datasets {
            var text = "\(dataset.path)"
            if let type = dataset.datatype, let space = dataset.dataspace {
                let shape =
                    space.kind == .null
                    ? "null"
                    : "("
                        + zip(space.dimensions, space.maxDimensions).map { dim, max in
                            max == nil ? "\(dim)/∞" : (max == dim ? "\(dim)" : "\(dim)/\(max!)")
                        }.joined(separator: ", ") + ")"
                text += " \(type.numpyDtype) \(shape)"
            }
            text += "\n"
            if let layout = dataset.layout {
                switch layout {
                case .chunked(let chunked):
                    text +=
                        "    chunked \(chunked.chunkShape.map(String.init).joined(separator: "×")) via \(chunked.index.name), \(dataset.chunks?.count ?? 0) chunks stored\n"
                case .contiguous(_, let size):
                    text += "    contiguous, \(size) bytes\(dataset.chunks?.count == 0 ? " (never written)" : "")\n"
                case .compact(let bytes):
                    text += "    compact, \(bytes.count) bytes inline\n"
                case .virtual:
                    text += "    virtual\n"
                }
            }
            if !dataset.filters.isEmpty {
                text +=
                    "    filters: " + dataset.filters.map { "\($0.name)(\($0.clientData.map(String.init).joined(separator: ",")))" }.joined(separator: " → ")
                    + "\n"
            }
            if dataset.fillValue.status == .userDefined, let bytes = dataset.fillValue.bytes, let type = dataset.datatype,
                let value = try? InspectionReport.simpleValue(bytes, type: type)
            {
                text += "    fill value: \(InspectionReport.json(value, resolve: resolve).rendered())\n"
            }
            text += attributeLines(dataset.attributes, indent: "    ", resolve: resolve)
            if includeChunks, let chunks = dataset.chunks {
                for i in 0..<chunks.count {
                    text += "    chunk \(chunks.coordinates(of: i).map(String.init).joined(separator: ".")) at \(chunks.offsets[i]), \(chunks.sizes[i]) bytes"
                    text += chunks.filterMasks[i] == 0 ? "\n" : ", filter mask \(chunks.filterMasks[i])\n"
                }
            }
            if let error = dataset.error { text += "    ERROR: \(error)\n" }
            entries.append((dataset.path, text))
        }
        for type in info.datatypes {
            entries.append((type.path, "\(type.path) (committed datatype\(type.datatype.map { " \($0.numpyDtype)" } ?? ""))\n"))
        }
        for (_, text) in entries.sorted(by: { $0.0 < $1.0 }) { out += text }
        return out
    }

    private static func attributeLines(_ attributes: [Attribute], indent: String, resolve: (UInt64) -> String?) -> String {
        var out = ""
        for attribute in attributes {
            let values = attribute.values.map { InspectionReport.json($0, resolve: resolve).rendered() }
            var shown =
                values.count == 1 && attribute.dataspace.kind != .simple
                ? values[0] : "[" + values.prefix(8).joined(separator: ", ") + (values.count > 8 ? ", …" : "") + "]"
            if shown.count > 120 { shown = String(shown.prefix(117)) + "…" }
            out += "\(indent)@\(attribute.name) = \(shown)\n"
        }
        return out
    }
}
