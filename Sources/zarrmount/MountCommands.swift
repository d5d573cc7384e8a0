import ArgumentParser
import Foundation
import HDF5Metadata
import Logging
import ObjectStore
import Scanner
import VirtualZarr
import ZarrFS
import JSONValue

struct Mount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Scan an archive and mount it as a read-only Zarr store (the last argument is the mountpoint).",
        discussion: """
            Scans like `zarrmount scan` (progress on stderr), mounts, and returns once the mount is \
            ready: the daemon stays in the background (as sshfs does). --foreground keeps it in the \
            terminal (for systemd and debugging); SIGINT/SIGTERM unmount. Chunk files are served by \
            ranged reads of the original objects, checked against the identity seen at scan time.
            """
    )

    @OptionGroup var source: SourceOptions

    @Flag(help: "Stay in the foreground instead of returning once mounted.")
    var foreground = false

    @Flag(help: "Show chunks decoded (no compressor, no filters): for readers without zlib/shuffle support (GDAL, netCDF-C, tensorstore).")
    var decoded = false

    @Option(help: "Memory for cached chunks, in bytes or with a suffix (512MiB, 1GiB).")
    var cacheSize: String = "1GiB"

    @Flag(help: "Let other users read the mount (needs user_allow_other in /etc/fuse.conf for non-root).")
    var allowOther = false

    @Option(help: "Write the daemon's log here (default: stderr in the foreground, nothing in the background).")
    var logFile: String?

    @Option(help: .hidden)
    var readyFile: String?

    func run() async throws {
        var sources = source
        guard sources.sources.count >= 2 else { throw ValidationError("give the sources, then the mountpoint") }
        let mountpoint = sources.sources.removeLast()
        guard let budget = parseSize(cacheSize) else { throw ValidationError("--cache-size \(cacheSize): use bytes or a KiB/MiB/GiB suffix") }
        try checkMountpoint(mountpoint)
        if !foreground {
            try launchDaemon(mountpoint: mountpoint)
            return
        }
        let config = try sources.resolve()
        let logger = makeLogger(level: source.logLevel)
        try await runScan(config, logger: logger) { summary in
            let view = decoded ? try DecodedView(summary.dataset) : nil
            let store = ZarrStore(view?.dataset ?? summary.dataset, format: config.zarrFormat)
            for warning in (view?.warnings ?? []) + store.omitted { printError("warning: \(warning)") }
            let tree = try ZarrTree(store, decodedPipelines: view?.pipelines ?? [:])
            let reader = ChunkReader(objects: summary.dataset.objects, fetcher: StoreChunkFetcher(store: summary.store), cacheBytes: budget)
            let sourcesText = config.sources
            let started = Date()
            let remote = summary.store
            let mount = FuseMount(tree: tree, reader: reader, logger: logger) {
                let reads = reader.statistics
                var document: [(String, JSON)] = [
                    ("mountpoint", .string(mountpoint)),
                    ("pid", .int(Int64(getpid()))),
                    ("sources", .array(sourcesText.map(JSON.string))),
                    ("files", .int(Int64(summary.files))),
                    ("arrays", .int(Int64(summary.arrayCount))),
                    ("chunks", .int(Int64(summary.chunkCount))),
                    ("zarr_format", .int(Int64(config.zarrFormat.rawValue))),
                    ("decoded", .bool(decoded)),
                    ("uptime_seconds", .double(Date().timeIntervalSince(started).rounded())),
                    ("reads", .object([("cache_hits", .int(Int64(reads.hits))), ("cache_misses", .int(Int64(reads.misses))),
                                       ("joined_fetches", .int(Int64(reads.joined))), ("in_flight", .int(Int64(reads.inFlight))),
                                       ("bytes_fetched", .uint(reads.bytesFetched)), ("cached_bytes", .int(Int64(reads.cachedBytes))),
                                       ("errors", .int(Int64(reads.errors)))])),
                ]
                if let remote {
                    let stats = remote.statistics
                    document.append(("http", .object([("requests", .int(Int64(stats.requests))), ("retries", .int(Int64(stats.retries))),
                                                      ("bytes", .uint(stats.bytes))])))
                }
                return Array(JSON.object(document).rendered(pretty: true).utf8)
            }
            let readyFile = self.readyFile
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try mount.run(at: mountpoint, allowOther: allowOther) {
                            printError("mounted \(summary.files) files at \(mountpoint) (Zarr v\(config.zarrFormat.rawValue)\(decoded ? ", decoded" : ""))")
                            if let readyFile { FileManager.default.createFile(atPath: readyFile, contents: Data("ready\n".utf8)) }
                        }
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "zarrmount-fuse"
                thread.start()
            }
            printError("unmounted \(mountpoint)")
        }
    }

    /// Refuses mountpoints that cannot work, saying what to do: a stale mount of a killed
    /// daemon ("Transport endpoint is not connected"), a live zarrmount mount, a missing path.
    private func checkMountpoint(_ mountpoint: String) throws {
        let probe = FuseMount.probe(mountpoint)
        var info = stat()
        if probe == .stale || stat(mountpoint, &info) != 0 {
            let code = probe == .stale ? ENOTCONN : errno
            if code == ENOTCONN {
                printError("error: \(mountpoint): a stale mount left by a daemon that is gone (Transport endpoint is not connected); run `zarrmount unmount \(mountpoint)` and mount again")
            } else {
                printError("error: \(mountpoint): \(String(cString: strerror(code))) (create an empty directory first)")
            }
            throw ExitCode(1)
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            printError("error: \(mountpoint): not a directory (create an empty directory first)")
            throw ExitCode(1)
        }
        if case .serving(let status) = probe {
            let pid = (try? JSON.parse(status))?["pid"]?.int64Value.map { " by daemon \($0)" } ?? ""
            printError("error: \(mountpoint): already mounted\(pid); run `zarrmount unmount \(mountpoint)` first")
            throw ExitCode(1)
        }
    }

    /// Re-runs this command in the foreground as a detached child and returns once it reports
    /// the mount ready, or fails with its error output.
    private func launchDaemon(mountpoint: String) throws {
        let ready = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-ready-\(getpid())").path
        try? FileManager.default.removeItem(atPath: ready)
        var arguments = Array(CommandLine.arguments.dropFirst())
        arguments.append(contentsOf: ["--foreground", "--ready-file", ready])
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
                                  : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0])
        child.arguments = arguments
        let errors = Pipe()
        if let logFile {
            if !FileManager.default.fileExists(atPath: logFile) { FileManager.default.createFile(atPath: logFile, contents: nil) }
            child.standardError = FileHandle(forWritingAtPath: logFile) ?? errors
        } else {
            child.standardError = errors
        }
        child.standardOutput = FileHandle.nullDevice
        child.standardInput = FileHandle.nullDevice
        try child.run()
        while child.isRunning {
            if FileManager.default.fileExists(atPath: ready) {
                try? FileManager.default.removeItem(atPath: ready)
                // The kernel mount exists; asking the root for its status proves the daemon
                // finished the FUSE handshake and answers requests.
                if FuseMount.readStatus(mountpoint) != nil {
                    printError("zarrmount: daemon \(child.processIdentifier) serving \(mountpoint)")
                    return
                }
                if child.isRunning { child.terminate() }
                child.waitUntilExit()
                break
            }
            usleep(50_000)
        }
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        printError(output.split(separator: "\n").filter { !$0.hasPrefix("[") }.joined(separator: "\n"))
        throw ExitCode(child.terminationStatus == 0 ? 1 : child.terminationStatus)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a zarrmount mount serves and its live counters (requests, bytes, cache hits and misses, errors).")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    func run() throws {
        guard let status = FuseMount.readStatus(mountpoint) else {
            printError("error: \(mountpoint): not a zarrmount mount (or its daemon is gone: run `zarrmount unmount \(mountpoint)`)")
            throw ExitCode(1)
        }
        print(status)
    }
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Unmount a zarrmount mount (also one left stale by a killed daemon).")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    @Flag(help: "Detach now even if the mount is busy; it goes away when no longer used.")
    var lazy = false

    func run() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/fusermount3")
        process.arguments = (lazy ? ["-u", "-z"] : ["-u"]) + [mountpoint]
        let errors = Pipe()
        process.standardError = errors
        do { try process.run() } catch {
            printError("error: cannot run /usr/bin/fusermount3 (install Debian's fuse3): \(error)")
            throw ExitCode(1)
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            printError("error: \(mountpoint): \(message)\(lazy ? "" : " (if it is busy, close the files using it or try --lazy)")")
            throw ExitCode(1)
        }
    }
}

func parseSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        return Int(text.dropLast(suffix.count)).map { $0 * factor }
    }
    return Int(text)
}
