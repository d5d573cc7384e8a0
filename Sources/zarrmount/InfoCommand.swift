import ArgumentParser
import ByteSource
import Foundation
import ObjectStore
import Scanner
import VirtualZarr

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a binary manifest (.zmf): its sources, arrays, chunks and writer; --check compares every object with the store.",
        discussion: """
            Reads the manifest (a path, http(s):// or s3:// URL), checks its checksum and every \
            entry, and prints what it holds. With --check, every object is listed again (a HEAD \
            or a stat) and compared with the size and identity the scan recorded. Exit status: 0 \
            readable (and, with --check, every object unchanged), 1 unreadable or some object \
            changed or missing.
            """
    )

    @Argument(help: ArgumentHelp("The manifest file: a path, http(s):// or s3:// URL.", valueName: "manifest"))
    var manifest: String

    @Flag(help: "List every object again and compare its size and identity with the manifest's.")
    var check = false

    @Flag(help: "Print every array, not only the first 20.")
    var all = false

    @Option(help: "S3-compatible endpoint (MinIO, Ceph, moto), addressed path-style; default: AWS.")
    var endpointUrl: String?

    @Option(help: "S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1).")
    var region: String?

    @Option(help: ArgumentHelp("PEM certificates to verify HTTPS servers against.", valueName: "file"))
    var caBundle: String?

    @Flag(help: "Send unsigned S3 requests (public buckets).")
    var anonymous = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func run() async throws {
        var config = MountConfig(sources: [])
        config.endpointURL = endpointUrl
        config.region = region
        config.caBundle = caBundle
        config.anonymous = anonymous
        let logger = try logging.makeLogger()
        let (store, engine) = try makeRemoteStore(config, logger: logger)
        defer { engine.shutdown() }
        let dataset: VirtualDataset
        let info: ManifestFile.Info
        var isShard = false
        do {
            let contents: ManifestFile.Contents
            (contents, info) = try await ReferenceLoader.readManifestContents(manifest, store: store)
            switch contents {
            case .combined(let combined):
                dataset = combined
            case .shard(let shard):
                // A shard's files, described as one dataset each would be: their objects in order.
                let range = shard.shard.range(of: shard.listedFiles)
                print(
                    "\(manifest): zarrmount manifest, format version \(info.version), written by \(info.writer), \(formatBytes(UInt64(info.bytes)))"
                )
                print(
                    "shard \(shard.shard.index)/\(shard.shard.count) of a scan of \(shard.listedFiles) files: files \(range.lowerBound)..<\(range.upperBound) in key order, \(shard.parts.count) scanned, \(shard.skipped.count) skipped; not combined yet (`zarrmount merge`)"
                )
                for part in shard.parts.prefix(all ? shard.parts.count : 20) { print("  \(part.name): \(part.dataset.arrays.count) arrays") }
                if !all && shard.parts.count > 20 { print("  ... and \(shard.parts.count - 20) more (--all lists them)") }
                for (file, reason) in shard.skipped { print("skipped: \(file): \(reason)") }
                var combined = VirtualDataset(groups: [])
                combined.objects = shard.parts.flatMap(\.dataset.objects)
                dataset = combined
                isShard = true
            }
        } catch let error as ScanError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if !isShard {
            for line in ManifestDescription.lines(dataset, info: info, name: manifest, arrayLimit: all ? nil : 20) { print(line) }
        }
        guard check else { return }
        let changed = await ObjectChanges.check(dataset.objects, store: store)
        if changed.isEmpty {
            print("check: all \(dataset.objects.count) objects unchanged since the scan")
            return
        }
        print("check: \(changed.count) of \(dataset.objects.count) objects changed or missing since the scan (their chunks read as ESTALE; scan again):")
        for line in changed { print("  \(line)") }
        throw ExitCode(1)
    }
}

/// `zarrmount info`'s text, apart from reading and listing (tested without a store).
enum ManifestDescription {
    static func lines(_ dataset: VirtualDataset, info: ManifestFile.Info, name: String, arrayLimit: Int?) -> [String] {
        var lines: [String] = []
        lines.append("\(name): zarrmount manifest, format version \(info.version), written by \(info.writer), \(formatBytes(UInt64(info.bytes)))")
        let totalBytes = dataset.objects.reduce(UInt64(0)) { $0 &+ $1.size }
        var kinds: [String: Int] = [:]
        for object in dataset.objects {
            let kind: String
            switch object.identity {
            case .etag?: kind = "ETag"
            case .lastModified?: kind = "Last-Modified"
            case .file?: kind = "file identity"
            case nil: kind = "no identity"
            }
            kinds[kind, default: 0] += 1
        }
        let identities = kinds.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        lines.append("sources: \(dataset.objects.count) objects, \(formatBytes(totalBytes)) (\(identities.isEmpty ? "none" : identities))")
        if let first = dataset.objects.first { lines.append("  first: \(first.url)") }
        if dataset.objects.count > 1, let last = dataset.objects.last { lines.append("  last:  \(last.url)") }
        var references = 0
        var inline = 0
        for array in dataset.arrays {
            for linear in array.manifest.setIndices {
                if case .inline = array.manifest[linear] { inline += 1 } else { references += 1 }
            }
        }
        lines.append("arrays: \(dataset.arrays.count), chunks: \(references + inline) (\(references) references, \(inline) inline)")
        let shown = arrayLimit.map { Array(dataset.arrays.prefix($0)) } ?? dataset.arrays
        for array in shown {
            let dims = array.dimensionNames.isEmpty ? "" : " (\(array.dimensionNames.joined(separator: ", ")))"
            lines.append(
                "  \(array.path)\(dims): shape \(array.shape), chunks \(array.chunkShape), \(array.dtype.v2String), \(array.manifest.setIndices.count) chunks set"
            )
        }
        if shown.count < dataset.arrays.count { lines.append("  ... and \(dataset.arrays.count - shown.count) more (--all lists them)") }
        for warning in dataset.warnings { lines.append("warning: \(warning)") }
        for note in dataset.notes { lines.append("note: \(note)") }
        return lines
    }
}
