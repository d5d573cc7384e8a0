import ArgumentParser
import Foundation
import ObjectStore
import Scanner
import VirtualZarr

/// Writes a synthetic manifest of one array with N chunk references into one object and times
/// writing and reading it back, with the memory reading takes: the manifest's own cost at
/// scale, apart from any scan (`tools/bench manifest` then mounts it).
struct ManifestScale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Write a synthetic manifest of N chunks over one object, and time writing and reading it."
    )

    @Option(help: "Chunks in the array.")
    var chunks = 10_000_000

    @Option(help: "The object the chunks point into (any local file of at least 64 KiB).")
    var object: String?

    @Option(help: "Where to write the manifest.")
    var out: String?

    @Option(help: "Only read and check this manifest, in this fresh process (its peak RSS is the reading's).")
    var read: String?

    func run() async throws {
        if let read {
            let start = ContinuousClock.now
            let file = try [UInt8](Data(contentsOf: URL(fileURLWithPath: read)))
            let (dataset, _) = try ManifestFile.decode(file, name: read)
            let took = seconds(ContinuousClock.now - start)
            let chunks = dataset.arrays.reduce(0) { $0 + $1.manifest.count }
            print(String(format: "read and checked %@ (%d chunks) in %.2f s; peak RSS %.0f MiB", read, chunks, took, residentHighWater()))
            return
        }
        guard let object, let out else { throw ValidationError("give --object and --out, or --read") }
        let attributes = try FileManager.default.attributesOfItem(atPath: object)
        let size = (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        guard size >= 65536 else { throw ValidationError("\(object) is smaller than 64 KiB") }
        let listed = ObjectInfo(listed: try LocalStore.describe(object))
        // Compressed chunks one after another, of lengths that vary as compressed chunks' do
        // (1,000 to 4,999 bytes, a fixed pseudo-random sequence), wrapping inside the object.
        var manifest = ChunkManifest(gridShape: [chunks])
        var offset: UInt64 = 0
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for linear in 0..<chunks {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let length = 1000 + (state >> 33) % 4000
            if offset + length > size { offset = 0 }
            manifest[linear] = .reference(object: 0, offset: offset, length: length)
            offset += length
        }
        let array = VirtualArray(
            path: "big", dtype: .float(size: 4), shape: [UInt64(chunks) * 4], chunkShape: [4], codecs: [], fillValue: .null,
            fillBytes: nil, dimensionNames: ["x"], attributes: [], manifest: manifest, origin: object)
        let dataset = VirtualDataset(objects: [listed], arrays: [array])
        let encodeStart = ContinuousClock.now
        let bytes = try ManifestFile.encode(dataset, writer: "zarrmount-bench")
        let encodeSeconds = seconds(ContinuousClock.now - encodeStart)
        try Data(bytes).write(to: URL(fileURLWithPath: out))
        print("synthetic manifest: \(chunks) chunks over \(object)")
        print(
            String(
                format: "file %.1f MiB (%.2f bytes a chunk, 20 before compression); written in %.2f s",
                Double(bytes.count) / 1048576, Double(bytes.count) / Double(chunks), encodeSeconds))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func residentHighWater() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return .nan }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
}
