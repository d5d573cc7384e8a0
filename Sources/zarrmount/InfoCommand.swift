import ArgumentParser
import ByteSource
import Foundation
import Icechunk
import JSONValue
import ObjectStore
import Scanner
import VirtualZarr

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Describe a binary manifest (.zmf): its sources, arrays, chunks and writer; --check compares every object with the store.",
        discussion: """
            Reads the manifest (a path, http(s):// or s3:// URL), checks its checksum and every \
            entry, and prints what it holds. With --check, every object is listed again (a HEAD \
            or a stat) and compared with the size and identity the scan recorded. Exit status: 0 \
            readable (and, with --check, every object unchanged), 1 unreadable or some object \
            changed or missing. With --icechunk DIR instead of a manifest: an Icechunk \
            repository's snapshot (of --branch, default main, --tag or --snapshot): its commit, \
            groups and arrays, and each array's chunks by kind (native, inline, virtual).
            """
    )

    @Argument(help: ArgumentHelp("The manifest file: a path, http(s):// or s3:// URL.", valueName: "manifest"))
    var manifest: String?

    @OptionGroup(title: "Icechunk") var repository: IcechunkOptions

    @Flag(help: "With --icechunk: print one JSON document (the keys of icechunk's inspect_snapshot, and each array's chunks by kind).")
    var json = false

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

    func validate() throws {
        guard (manifest == nil) != (repository.icechunk == nil) else {
            throw ValidationError("give a manifest, or --icechunk DIR, not both")
        }
        guard repository.icechunk != nil || !json else { throw ValidationError("--json goes with --icechunk") }
    }

    func run() async throws {
        var config = MountConfig(sources: [])
        config.endpointURL = endpointUrl
        config.region = region
        config.caBundle = caBundle
        config.anonymous = anonymous
        let logger = try logging.makeLogger()
        let (store, engine) = try makeRemoteStore(config, logger: logger)
        defer { engine.shutdown() }
        if let icechunk = repository.icechunk {
            try await describeIcechunk(icechunk, store: store)
            return
        }
        guard let manifest else { throw ValidationError("give a manifest") }
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
                for (file, reason) in shard.skipped { print("skipped: " + Scanner.skippedLine(file: file, reason: reason)) }
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

extension Info {
    /// `info --icechunk DIR`: the snapshot a reference names, its nodes, and each array's chunks
    /// by kind.
    func describeIcechunk(_ directory: String, store: RemoteStore) async throws {
        let reference = self.repository.reference
        do {
            let repository = try IcechunkRepository.at(directory, store: store)
            let id = try await repository.resolve(reference)
            let snapshot = try await repository.snapshot(id)
            let references = try await repository.chunkReferences(of: snapshot)
            if json {
                print(Self.report(snapshot, references: references).rendered(pretty: true))
                return
            }
            let time = Self.isoTime(microseconds: snapshot.flushedAt)
            print("\(directory): Icechunk repository, snapshot \(snapshot.id) (\(describe(reference))), committed \(time): \"\(snapshot.message)\"")
            print("parent: \(snapshot.parentID.map(\.description) ?? "none")")
            let arrays = snapshot.nodes.filter { $0.array != nil }
            print("groups: \(snapshot.nodes.count - arrays.count), arrays: \(arrays.count)")
            for node in snapshot.nodes.sorted(by: { $0.path < $1.path }) {
                guard let array = node.array else {
                    print("  \(node.path) (group)")
                    continue
                }
                let (native, inline, virtual, objects) = IcechunkChunkRef.tally(references[node.path] ?? [])
                let names = array.dimensionNames.contains(where: { $0 != nil }) ? " (\(array.dimensionNames.map { $0 ?? "-" }.joined(separator: ", ")))" : ""
                print(
                    "  \(node.path)\(names): shape \(array.shape), chunks \(array.chunkShape); \(native) native, \(inline) inline, \(virtual) virtual chunks"
                        + (objects == 0 ? "" : " in \(objects) objects"))
            }
        } catch  where error is IcechunkError || error is ScanError || error is ObjectStoreError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    /// `2026-12-04T17:58:04.539235Z`, as icechunk prints a commit's time.
    static func isoTime(microseconds: UInt64) -> String {
        let seconds = Date(timeIntervalSince1970: Double(microseconds / 1_000_000)).formatted(.iso8601)
        return seconds.dropLast() + "." + String(format: "%06d", Int(microseconds % 1_000_000)) + "Z"
    }

    /// The snapshot in the shape of icechunk's own `Repository.inspect_snapshot` document, and
    /// each array's chunk references counted by kind.
    static func report(_ snapshot: IcechunkSnapshot, references: [String: [IcechunkChunkRef]]) -> JSON {
        let nodes: [JSON] = snapshot.nodes.map { node in
            var fields: [(String, JSON)] = [
                ("id", .string(IcechunkObjectID(bytes: node.id).description)), ("path", .string(node.path)),
                ("node_type", .string(node.array == nil ? "group" : "array")),
            ]
            if let array = node.array {
                fields.append(
                    (
                        "manifest_refs",
                        .array(
                            array.manifests.map { reference in
                                .object([
                                    ("id", .string(reference.id.description)),
                                    ("extents", .array(reference.extents.map { .array([.uint(UInt64($0.lowerBound)), .uint(UInt64($0.upperBound))]) })),
                                ])
                            })
                    ))
            }
            return .object(fields)
        }
        let chunks: [(String, JSON)] = snapshot.nodes.compactMap { node in
            guard node.array != nil else { return nil }
            let counts = IcechunkChunkRef.tally(references[node.path] ?? [])
            return (
                node.path,
                .object([("native", .int(Int64(counts.native))), ("inline", .int(Int64(counts.inline))), ("virtual", .int(Int64(counts.virtual)))])
            )
        }
        return .object([
            ("id", .string(snapshot.id.description)), ("parent_id", snapshot.parentID.map { .string($0.description) } ?? .null),
            ("flushed_at", .string(isoTime(microseconds: snapshot.flushedAt))), ("commit_message", .string(snapshot.message)),
            (
                "manifests",
                .array(
                    snapshot.manifestFiles.map {
                        .object([("id", .string($0.id.description)), ("size_bytes", .uint($0.bytes)), ("num_chunk_refs", .uint(UInt64($0.chunkReferences)))])
                    })
            ),
            ("nodes", .array(nodes)), ("chunks", .object(chunks)),
        ])
    }

    private func describe(_ reference: IcechunkReference) -> String {
        switch reference {
        case .branch(let name): return "branch \(name)"
        case .tag(let name): return "tag \(name)"
        case .snapshot: return "by id"
        }
    }
}
