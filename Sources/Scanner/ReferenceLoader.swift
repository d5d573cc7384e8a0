import ByteSource
import Foundation
import Logging
import ObjectStore
import VirtualZarr

/// A virtual dataset from an existing kerchunk reference file (local, HTTP or S3) instead of a
/// scan. The references carry no object identities, so each object is asked for its size and
/// ETag now; every later chunk read is checked against them, and references that point past
/// an object's end are refused (they were made from another version of the file).
public enum ReferenceLoader {
    /// Reference files above this size are refused rather than read into memory.
    public static let maxReferenceBytes: UInt64 = 2 << 30

    /// Reads the reference file at `location`, refuses objects outside `allowSources` (and the
    /// file's own origin or directory) before any of them is asked for, and lists the rest.
    /// Keys that cannot be file names fail the load, or under `onError: .skip` leave their
    /// array out with a warning.
    public static func load(
        _ location: String, store: RemoteStore?, allowSources: [String] = [], onError: ErrorPolicy = .fail,
        requireManifest: Bool = false, logger: Logger
    ) async throws -> ScanSummary {
        let start = ContinuousClock.now
        let workingDirectory = FileManager.default.currentDirectoryPath
        let confinement: SourceConfinement
        do {
            confinement = try SourceConfinement(referencesAt: location, allowSources: allowSources, workingDirectory: workingDirectory)
        } catch {
            throw ScanError.references(location: location, detail: "\(error)")
        }
        let bytes = try await fetchBytes(location, store: store)
        if ManifestFile.hasMagic(bytes) || requireManifest {
            return try loadManifest(bytes, location: location, confinement: confinement, store: store, start: start, logger: logger)
        }
        return try await loadKerchunk(
            String(decoding: bytes, as: UTF8.self), location: location, confinement: confinement, store: store, onError: onError, start: start,
            logger: logger)
    }

    /// Kerchunk references already read: objects confined, listed for their sizes and
    /// identities, and every range checked against its object.
    /// Objects in `knownSizes` are not listed: they take that size and no identity (an Icechunk
    /// repository's chunk objects, which are never rewritten).
    static func loadKerchunk(
        _ text: String, location: String, confinement: SourceConfinement, store: RemoteStore?, onError: ErrorPolicy,
        start: ContinuousClock.Instant, logger: Logger, knownSizes: [String: UInt64] = [:]
    ) async throws -> ScanSummary {
        let workingDirectory = FileManager.default.currentDirectoryPath
        var dataset: VirtualDataset
        let firstKeys: [String]
        do {
            let contents = try KerchunkReferences.contents(text, name: location, badKeys: onError == .skip ? .skip : .fail)
            dataset = contents.dataset
            firstKeys = contents.firstKeys
        } catch let error as ReferenceKeyError {
            throw ScanError.references(location: location, detail: "\(error)")
        } catch {
            throw ScanError.references(location: location, detail: "\(error) (is \(location) a kerchunk reference file, version 0 or 1?)")
        }
        for (object, key) in zip(dataset.objects, firstKeys) {
            if let reason = confinement.refusal(of: object.url, workingDirectory: workingDirectory) {
                throw ScanError.references(
                    location: location,
                    detail: "\(location): key \(ReferenceKeyError.quoted(key)) names \(object.url), which is not allowed: \(reason); "
                        + "if you trust this reference file, add --allow-source PREFIX (config key allow_sources)")
            }
        }
        let urls = dataset.objects.map(\.url).filter { knownSizes[$0] == nil }
        logger.info("references read", metadata: ["location": "\(location)", "objects": "\(dataset.objects.count)", "listed": "\(urls.count)"])
        var listed: [ListedObject]
        do {
            if let store { listed = try await store.list(urls) } else { listed = try LocalStore.list(urls) }
            for object in dataset.objects {
                if let size = knownSizes[object.url] { listed.append(ListedObject(url: object.url, size: size, identity: nil)) }
            }
        } catch let error as ObjectStoreError {
            throw ScanError.references(location: location, detail: "\(location) refers to \(error)")
        } catch let error as ListingError {
            throw ScanError.references(location: location, detail: "\(location) refers to \(error)")
        }
        let byURL = Dictionary(listed.map { ($0.url, $0) }, uniquingKeysWith: { first, _ in first })
        for index in dataset.objects.indices {
            let url = dataset.objects[index].url
            let absolute = url.contains("://") || url.hasPrefix("/") ? url : FileManager.default.currentDirectoryPath + "/" + url
            guard let object = byURL[url] ?? byURL[absolute] else {
                throw ScanError.references(location: location, detail: "\(location) refers to \(url), which the store did not find")
            }
            dataset.objects[index] = ObjectInfo(listed: object)
        }
        try checkRanges(dataset, location: location)
        return ScanSummary(
            dataset: dataset, files: dataset.objects.count, skipped: [], requests: urls.count, bytesRead: UInt64(text.utf8.count),
            elapsed: ContinuousClock.now - start, cacheHits: 0, store: store, maxRounds: 0)
    }

    /// A manifest file (`ManifestFile`): it carries each object's size and identity from its
    /// scan, so nothing is listed now; every chunk read checks the identity, as after a scan.
    /// Its objects are confined as a reference file's are.
    static func loadManifest(
        _ bytes: [UInt8], location: String, confinement: SourceConfinement, store: RemoteStore?, start: ContinuousClock.Instant,
        logger: Logger
    ) throws -> ScanSummary {
        let dataset: VirtualDataset
        do {
            dataset = try ManifestFile.decode(bytes, name: location).dataset
        } catch let error as ManifestFileError {
            throw ScanError.references(location: location, detail: "\(error)")
        }
        let workingDirectory = FileManager.default.currentDirectoryPath
        for object in dataset.objects {
            if let reason = confinement.refusal(of: object.url, workingDirectory: workingDirectory) {
                throw ScanError.references(
                    location: location,
                    detail: "\(location) names \(object.url), which is not allowed: \(reason); "
                        + "if you trust this manifest, add --allow-source PREFIX (config key allow_sources)")
            }
        }
        logger.info("manifest read", metadata: ["location": "\(location)", "objects": "\(dataset.objects.count)"])
        var summary = ScanSummary(
            dataset: dataset, files: dataset.objects.count, skipped: [], requests: 0, bytesRead: UInt64(bytes.count),
            elapsed: ContinuousClock.now - start, cacheHits: 0, store: store, maxRounds: 0)
        summary.fromManifest = true
        return summary
    }

    /// The manifest file at `location` (path or URL), read and checked, with no confinement:
    /// for describing it (`zarrmount info`), not for serving it.
    public static func readManifest(_ location: String, store: RemoteStore?) async throws -> (dataset: VirtualDataset, info: ManifestFile.Info) {
        let bytes = try await fetchBytes(location, store: store)
        do {
            return try ManifestFile.decode(bytes, name: location)
        } catch let error as ManifestFileError {
            throw ScanError.references(location: location, detail: "\(error)")
        }
    }

    /// The manifest file at `location`, combined or one shard's, read and checked.
    public static func readManifestContents(
        _ location: String, store: RemoteStore?
    ) async throws -> (
        contents: ManifestFile.Contents, info: ManifestFile.Info
    ) {
        let bytes = try await fetchBytes(location, store: store)
        do {
            return try ManifestFile.decodeContents(bytes, name: location)
        } catch let error as ManifestFileError {
            throw ScanError.references(location: location, detail: "\(error)")
        }
    }

    static func fetchBytes(_ location: String, store: RemoteStore?) async throws -> [UInt8] {
        do {
            let isRemote = try Location(parsing: location).isRemote
            let bytes: [UInt8]
            if isRemote {
                guard let store else { throw ScanError.references(location: location, detail: "\(location): remote references need an object store") }
                guard let object = try await store.list([location]).first else {
                    throw ScanError.references(location: location, detail: "\(location): not found")
                }
                guard object.size <= maxReferenceBytes else {
                    throw ScanError.references(
                        location: location, detail: "\(location): \(object.size) bytes is more than the \(maxReferenceBytes) a reference file may have")
                }
                bytes = try await store.get(object.url, range: 0..<object.size, identity: object.identity)
            } else {
                let path = location.hasPrefix("file://") ? String(location.dropFirst(7)) : location
                let object = try LocalStore.describe(path)
                guard object.size <= maxReferenceBytes else {
                    throw ScanError.references(
                        location: location, detail: "\(location): \(object.size) bytes is more than the \(maxReferenceBytes) a reference file may have")
                }
                bytes = try FileSource(path: path).readSynchronously(offset: 0, length: Int(object.size))
            }
            return bytes
        } catch let error as ScanError {
            throw error
        } catch let error as ObjectStoreError {
            throw ScanError.references(location: location, detail: "cannot read the references: \(error)")
        } catch {
            throw ScanError.references(location: location, detail: "\(location): cannot read the references (\(error))")
        }
    }

    static func checkRanges(_ dataset: VirtualDataset, location: String) throws {
        for array in dataset.arrays {
            for linear in array.manifest.setIndices {
                guard case .reference(let object, let offset, let length) = array.manifest[linear] else { continue }
                let info = dataset.objects[Int(object)]
                guard length <= info.size, offset <= info.size - length else {
                    throw ScanError.references(
                        location: location,
                        detail:
                            "\(location): chunk \(array.manifest.coordinates(linear)) of \(array.path) is bytes \(offset)..<\(offset + length) of \(info.url), which has \(info.size) bytes; the references were made from another version of it, regenerate them"
                    )
                }
            }
        }
    }
}
