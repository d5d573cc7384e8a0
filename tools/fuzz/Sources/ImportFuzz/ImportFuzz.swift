import Scanner
import VirtualZarr
import ZarrFS

/// libFuzzer entry point for what a user imports as text: kerchunk references (read under both
/// key policies, then laid out as the Zarr v2 and v3 trees a mount would serve, every directory
/// listed) and YAML mount configs. Any input must load or fail with a typed error, never crash,
/// hang or exhaust memory.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    for policy in [BadKeyPolicy.fail, .skip] {
        guard let dataset = try? KerchunkReferences.read(text, name: "fuzz.json", badKeys: policy) else { continue }
        for format in [ZarrFormat.v2, .v3] {
            let store = ZarrStore(dataset, format: format)
            guard let tree = try? ZarrTree(store) else { continue }
            var directories: [UInt64] = [ZarrTree.rootInode]
            var visited = 0
            while let inode = directories.popLast(), visited < 10_000 {
                visited += 1
                for (_, entry) in tree.list(inode, from: 0, limit: 1_000) {
                    precondition(
                        !entry.name.isEmpty && entry.name != "." && entry.name != ".." && !entry.name.contains("/")
                            && !entry.name.utf8.contains(0) && entry.name.utf8.count <= 255, "a name no directory may hold: \(entry.name)")
                    if entry.content == .directory { directories.append(entry.inode) }
                }
            }
            _ = try? KerchunkReferences.write(dataset)
        }
    }
    do {
        _ = try MountConfig.parse(text, file: "fuzz.yaml")
    } catch is ConfigError {
        // The expected outcome for most inputs.
    } catch {
        fatalError("untyped error escaped the config loader: \(error)")
    }
    return 0
}
