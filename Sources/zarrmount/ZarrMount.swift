import ArgumentParser
import ByteSource
import Foundation
import HDF5Metadata
import Logging
import JSONValue

/// The release this build belongs to; `--version` prints it with the allocator actually in use.
/// This is the version's one place: the Python package reads it from here (python/setup.py), and
/// CHANGELOG.md names it.
let zarrmountVersion = "0.1.0-dev"

@main
struct ZarrMount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zarrmount",
        abstract: "Mount archives of netCDF-3 and netCDF-4/HDF5 files as read-only Zarr stores.",
        version: "zarrmount \(zarrmountVersion) (memory allocator: \(MemoryAllocator.description))",
        subcommands: [Mount.self, Unmount.self, Status.self, Scan.self, Merge.self, Export.self, Info.self, Inspect.self, Verify.self]
    )

    /// ArgumentParser's own entry point, after the allocator is set up.
    static func main() async {
        do {
            var command = try parseAsRoot()
            // A mount leaves its daemon before the process has a second thread (Daemon).
            if var mount = command as? Mount {
                // A daemon started as a new program (--ready-file) closes what it inherited.
                if mount.readyFile != nil { Daemon.closeInheritedDescriptors() }
                try mount.detach()
                command = mount
            }
            MemoryAllocator.returnFreedMemoryPromptly()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print the structure of an HDF5/NetCDF4 file as the native parser sees it.",
        discussion: """
            Reads only metadata. Without --json, prints a tree of groups and datasets with types, \
            shapes, chunking, filters, fill values and attributes. With --json, prints one JSON \
            document (stable keys; see the README). Exit status 1 when the file is not HDF5 or \
            is truncated or corrupt; a dataset the parser cannot handle is listed with its reason.
            """
    )

    @Argument(help: "The HDF5 or NetCDF4 file to inspect.")
    var path: String

    @Flag(help: "Print one machine-readable JSON document instead of a tree.")
    var json = false

    @Flag(help: "Include every chunk's grid coordinates, file offset, stored size and filter mask.")
    var chunks = false

    @Flag(help: "Print read statistics (requests, bytes, dependent rounds) to stderr.")
    var stats = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func run() async throws {
        // trace shows every read sent to the file.
        let logger = try logging.makeLogger()
        let (info, counters) = try await parseLocalFile(path, logger: logger)
        if json {
            print(InspectionReport.json(info, file: path, includeChunks: chunks).rendered())
        } else {
            print(TreeRenderer.render(info, file: path, includeChunks: chunks), terminator: "")
        }
        if stats {
            printError(
                "reads: \(counters.requests) requests, \(counters.sourceReads) source reads, \(counters.bytesFetched) bytes, \(counters.rounds) dependent rounds"
            )
        }
    }
}

/// `zarrmount verify` runs `zarrmount-verify` (installed beside it): the oracle links libhdf5,
/// and the mount daemon does not.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check the native parser against libhdf5 on a local file (runs zarrmount-verify).",
        discussion: """
            Parses the file twice, with zarrmount's own parser and with the system libhdf5, and \
            compares every dataset: shape, type size, layout, chunk shape, filters, fill value, \
            attribute bytes and every chunk's coordinates, offset, size and filter mask. Exit \
            status 0 when they agree, 1 when they differ (the differences are listed). The \
            comparison is the separate executable zarrmount-verify, so that zarrmount itself does \
            not load libhdf5.
            """
    )

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    @Argument(help: "Local HDF5 or NetCDF4 files to verify.")
    var paths: [String] = []

    func run() throws {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let tool = (own as NSString).deletingLastPathComponent + "/zarrmount-verify"
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            printError("error: \(tool) is missing: `zarrmount verify` runs zarrmount-verify, built beside zarrmount by `swift build` (or installed with it)")
            throw ExitCode(1)
        }
        let arguments = [tool] + paths
        var cArguments = arguments.map { strdup($0) } + [nil]
        execv(tool, &cArguments)
        printError("error: cannot run \(tool): \(String(cString: strerror(errno)))")
        throw ExitCode(1)
    }
}

func parseLocalFile(_ path: String, logger: Logger? = nil) async throws -> (HDF5FileInfo, ReadCounters) {
    do {
        return try await BlockCache.measuring(path: path, logger: logger) { try await HDF5File.parse($0) }
    } catch let error as HDF5FileError {
        // inspect shows HDF5 structure; a netCDF-3 or foreign file gets what it is instead.
        let prefix = (try? FileSource(path: path).readSynchronously(offset: 0, length: FileSignature.bytesNeeded)) ?? []
        let signature = FileSignature.classify(prefix)
        if error.underlying.kind == .notHDF5, signature != .hdf5 {
            let what = signature.isNetCDF3 ? "; its variables and chunks: `zarrmount scan \(path) --refs OUT.json`" : ""
            printError("error: \(path): \(signature), which has no HDF5 structure to show\(what)")
        } else {
            printError("error: \(error)")
        }
        throw ExitCode(1)
    } catch let error as ByteSourceError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

func printError(_ message: String) {
    var stderr = StandardError()
    print(message, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleWriter.writeToStandardError(string)
    }
}
