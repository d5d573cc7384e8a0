import ByteSource
import Foundation
import HDF5Mapping
import Icechunk
import JSONValue
import Logging
import ObjectStore
import VirtualZarr

/// Where an Icechunk mount comes from: a repository directory and the snapshot to serve.
public struct IcechunkSource: Sendable, Equatable {
    public var root: String
    public var reference: IcechunkReference

    public init(root: String, reference: IcechunkReference) {
        self.root = root
        self.reference = reference
    }
}

extension IcechunkRepository {
    /// Whether a repository root is read through the object store (`s3://`, `http(s)://`); a
    /// path or a `file://` URL is a local directory.
    static func isRemote(_ root: String) -> Bool { (try? Location(root))?.isRemote ?? false }

    /// A repository in a local directory, or under an `s3://bucket/prefix` (or `http(s)://`)
    /// read through `store`.
    public static func at(_ root: String, store: RemoteStore?) throws -> IcechunkRepository {
        guard isRemote(root) else {
            let path = root.hasPrefix("file://") ? String(root.dropFirst("file://".count)) : root
            return .local(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
        }
        guard let store else { throw ScanError.references(location: root, detail: "\(root): a remote repository needs an object store") }
        var base = root
        while base.hasSuffix("/") { base.removeLast() }
        let prefix = base
        return IcechunkRepository(
            root: root,
            fetch: { key, limit in
                let url = prefix + "/" + key
                do {
                    guard let object = try await store.list([url]).first else { return nil }
                    guard object.size <= UInt64(limit) else { throw IcechunkError.fileTooLarge(file: key, size: object.size, limit: limit) }
                    return try await store.get(object.url, range: 0..<object.size, identity: object.identity)
                } catch let error as ObjectStoreError where error.kind == .notFound {
                    return nil
                }
            },
            list: { directory in
                // The names of the reference directories (branch.main, tag.v1).
                let objects = (try? await store.list([prefix + "/" + directory + "/*/ref.json"])) ?? []
                return objects.map { URL(string: $0.url)?.deletingLastPathComponent().lastPathComponent ?? $0.url }.sorted()
            })
    }
}

extension ReferenceLoader {
    /// An Icechunk repository's snapshot as a virtual dataset: read natively, turned into
    /// kerchunk references (`IcechunkReferences`) and loaded as those are, so its objects are
    /// confined (the repository's own chunks, and virtual chunks only under `allowSources`),
    /// listed and range-checked; a virtual chunk's object that changed after the repository
    /// recorded it is refused, as icechunk refuses to read it.
    public static func loadIcechunk(
        _ source: IcechunkSource, store: RemoteStore?, allowSources: [String], onError: ErrorPolicy, logger: Logger
    ) async throws -> ScanSummary {
        let start = ContinuousClock.now
        let workingDirectory = FileManager.default.currentDirectoryPath
        // A local repository (a path or a file:// URL) is named by its absolute path, so that its
        // chunk objects are plain paths like every other local object.
        var directory = source.root
        if case .local(let path)? = try? Location(source.root) { directory = path.hasPrefix("/") ? path : workingDirectory + "/" + path }
        while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
        let repository = try IcechunkRepository.at(directory, store: store)
        let converted: IcechunkReferences
        let snapshotID: IcechunkObjectID
        do {
            snapshotID = try await repository.resolve(source.reference)
            let snapshot = try await repository.snapshot(snapshotID)
            converted = try IcechunkReferences(snapshot: snapshot, references: try await repository.chunkReferences(of: snapshot), root: directory)
        } catch let error as IcechunkError {
            throw ScanError.references(location: source.root, detail: "\(error)")
        }
        logger.info("icechunk snapshot read", metadata: ["repository": "\(directory)", "snapshot": "\(snapshotID)"])
        let confinement: SourceConfinement
        do {
            // The repository's own directory holds its chunk objects.
            confinement = try SourceConfinement(referencesAt: directory + "/refs", allowSources: allowSources, workingDirectory: workingDirectory)
        } catch {
            throw ScanError.references(location: source.root, detail: "\(error)")
        }
        // A local repository's chunk objects are listed all the same: their owners and modes
        // decide who may read them through a mount other users can read (--allow-other).
        var summary = try await loadKerchunk(
            converted.text, location: "\(source.root) (snapshot \(snapshotID))", confinement: confinement, store: store, onError: onError,
            start: start, logger: logger, knownSizes: IcechunkRepository.isRemote(directory) ? converted.nativeObjectSizes : [:])
        for object in summary.dataset.objects {
            guard let recorded = converted.checksums[object.url] else { continue }
            switch recorded {
            case .lastModified(let seconds):
                guard let modified = object.lastModified, modified <= Int64(seconds) else {
                    throw ScanError.references(
                        location: source.root,
                        detail:
                            "virtual chunks of snapshot \(snapshotID) point into \(object.url), which was modified after the repository recorded it "
                            + "(at \(object.lastModified.map(String.init) ?? "an unknown time"), recorded \(seconds), seconds since 1970): "
                            + "they would not be the bytes the repository describes; write the virtual references again")
                }
            case .etag(let tag):
                guard case .etag(let current) = object.identity, current.trimmingCharacters(in: ["\""]) == tag.trimmingCharacters(in: ["\""]) else {
                    throw ScanError.references(
                        location: source.root,
                        detail:
                            "virtual chunks of snapshot \(snapshotID) point into \(object.url), whose ETag is \(object.identity.map(\.description) ?? "unknown"), "
                            + "not \(tag) as the repository recorded: write the virtual references again")
                }
            }
        }
        for index in summary.dataset.arrays.indices {
            var array = summary.dataset.arrays[index]
            guard array.manifest.storedChunkCount < array.manifest.count, let fill = converted.missingChunkFills[array.path] else { continue }
            var probe = array
            probe.fillValue = fill
            let bytes: [UInt8]?
            switch fill {
            case .bool(let value): bytes = [value ? 1 : 0]
            case .null: bytes = nil
            default: bytes = NetCDFMapping.zarrFillBytes(probe)
            }
            guard let bytes else { continue }
            do {
                try NetCDFMapping.fillMissingChunks(&array, hdf5Fill: bytes)
            } catch {
                throw ScanError.references(location: source.root, detail: "array \(array.path): \(error)")
            }
            summary.dataset.arrays[index] = array
        }
        return summary
    }
}
