import ByteSource
import Foundation
import ObjectStore
import VirtualZarr

/// The files an HDF5 file keeps raw data in (External Data Files message), found and checked
/// before any chunk points into them. Their names come from the file, so they are data from
/// elsewhere like a reference file's: a name resolves against the HDF5 file's own location
/// (its directory, or its URL's) and must stay under the sources the user allowed (that
/// directory or origin by default, plus `--allow-source`). A variable whose raw data is in a
/// refused, missing or too short file is left out with a warning that says which and why.
enum ExternalFiles {
    /// Why a name cannot be a location.
    struct Unusable: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// `dataset.objects` is the listed file followed by the external files under their names as
    /// written (NetCDFMapping's order); afterwards it holds the usable files, listed.
    static func resolve(
        _ dataset: inout VirtualDataset, file: ListedObject, store: RemoteStore?, allowSources: [String]
    ) async throws {
        let workingDirectory = FileManager.default.currentDirectoryPath
        let confinement: SourceConfinement
        do {
            confinement = try SourceConfinement(referencesAt: file.url, allowSources: allowSources, workingDirectory: workingDirectory)
        } catch {
            throw ScanError.file(url: file.url, reason: "\(error)")
        }
        let names = dataset.objects.dropFirst().map(\.url)
        var objects: [ObjectInfo?] = [ObjectInfo(listed: file)]
        var problems: [Int: String] = [:]
        for (index, name) in names.enumerated() {
            let id = index + 1
            let url: String
            switch location(of: name, besides: file.url, workingDirectory: workingDirectory) {
            case .success(let resolved): url = resolved
            case .failure(let unusable):
                problems[id] = "\(name) cannot be used: \(unusable.reason)"
                objects.append(nil)
                continue
            }
            let admitted: String
            switch confinement.admitted(url, workingDirectory: workingDirectory) {
            case .success(let canonical): admitted = canonical
            case .failure(let error):
                problems[id] =
                    "\(name) (\(url)) is not allowed: \(error.reason); if you trust this file, add --allow-source PREFIX (config key allow_sources)"
                objects.append(nil)
                continue
            }
            do {
                let listed: ListedObject?
                if try Location(parsing: admitted).isRemote {
                    guard let store else { throw ScanError.noObjectStore }
                    listed = try await store.list([admitted]).first
                } else {
                    listed = try LocalStore.describe(admitted)
                }
                guard let listed else {
                    problems[id] = "\(name) (\(admitted)) was not found"
                    objects.append(nil)
                    continue
                }
                objects.append(ObjectInfo(listed: listed))
            } catch {
                problems[id] = "\(name) (\(admitted)) cannot be read: \(error)"
                objects.append(nil)
            }
        }
        // Arrays that use an unusable file, or bytes past a file's end, are left out.
        var kept: [VirtualArray] = []
        for array in dataset.arrays {
            var reason: String?
            for linear in array.manifest.setIndices {
                guard case .reference(let object, let offset, let length) = array.manifest[linear], object > 0 else { continue }
                if let problem = problems[Int(object)] {
                    reason = problem
                    break
                }
                guard Int(object) < objects.count, let info = objects[Int(object)] else { continue }
                let (end, overflow) = offset.addingReportingOverflow(length)
                if overflow || end > info.size {
                    reason =
                        "bytes \(offset)..<\(offset &+ length) of \(info.url) are past its end (\(info.size) bytes); libhdf5 would read zeros there"
                    break
                }
            }
            if let reason {
                dataset.warnings.append("\(file.url): /\(array.path) left out: raw data in external files: \(reason)")
            } else {
                kept.append(array)
            }
        }
        dataset.arrays = kept
        // Only the files a kept array reads stay, renumbered in order.
        var used = Set<UInt32>([0])
        for array in kept {
            for linear in array.manifest.setIndices {
                if case .reference(let object, _, _) = array.manifest[linear] { used.insert(object) }
            }
        }
        var renumbered: [UInt32: UInt32] = [:]
        var finalObjects: [ObjectInfo] = []
        for (id, object) in objects.enumerated() where used.contains(UInt32(id)) {
            guard let object else { continue }
            renumbered[UInt32(id)] = UInt32(finalObjects.count)
            finalObjects.append(object)
        }
        for index in dataset.arrays.indices {
            for linear in dataset.arrays[index].manifest.setIndices {
                guard case .reference(let object, let offset, let length) = dataset.arrays[index].manifest[linear],
                    let new = renumbered[object], new != object
                else { continue }
                dataset.arrays[index].manifest[linear] = .reference(object: new, offset: offset, length: length)
            }
        }
        dataset.objects = finalObjects
    }

    /// Where an external file named `name` is for the HDF5 file at `url`: beside it. A local
    /// file's name may be absolute (confinement then decides); a remote file's must be relative.
    static func location(of name: String, besides url: String, workingDirectory: String) -> Result<String, Unusable> {
        guard !name.contains("\0") else { return .failure(Unusable("it contains a NUL byte")) }
        let location: Location
        do { location = try Location(parsing: url) } catch { return .failure(Unusable("the HDF5 file's location \(url) cannot be parsed")) }
        switch location {
        case .local(let path):
            if name.hasPrefix("/") { return .success(name) }
            let absolute = path.hasPrefix("/") ? path : workingDirectory + "/" + path
            return .success(directory(of: absolute) + "/" + name)
        case .http, .s3:
            guard !name.hasPrefix("/"), !name.contains("://") else {
                return .failure(Unusable("a remote file's external files must be named relative to it"))
            }
            var base = url
            if let cut = base.firstIndex(where: { $0 == "?" || $0 == "#" }) { base = String(base[..<cut]) }
            let encoded: String
            if case .http = location {
                guard let escaped = name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) else {
                    return .failure(Unusable("it cannot be part of a URL"))
                }
                encoded = escaped
            } else {
                encoded = name
            }
            return .success(directory(of: base) + "/" + encoded)
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}
