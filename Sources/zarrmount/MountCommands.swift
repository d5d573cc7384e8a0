import ArgumentParser
import Foundation
import Icechunk
import HDF5Metadata
import Logging
import ObjectStore
import Scanner
import StoreAdapter
import VirtualZarr
import ZarrFS
import JSONValue

struct Mount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Scan an archive and mount it as a read-only Zarr store (the last argument is the mountpoint).",
        discussion: """
            Scans like `zarrmount scan` (progress on stderr), mounts, and returns once the mount is \
            ready: the daemon stays in the background (as sshfs does). --foreground keeps it in the \
            terminal (for systemd and debugging); SIGINT/SIGTERM unmount. Chunk files are served by \
            ranged reads of the original objects, checked against the identity seen at scan time.
            """
    )

    @OptionGroup var source: SourceOptions

    @Option(
        help: ArgumentHelp(
            "Mount a binary manifest (`zarrmount scan ... --manifest FILE.zmf`; a path, http(s):// or s3:// URL) instead of scanning: nothing is listed or parsed, each object's identity is checked on its first read.",
            valueName: "file"))
    var manifest: String?

    @OptionGroup(title: "Icechunk") var repository: IcechunkOptions

    @Flag(help: "Stay in the foreground instead of returning once mounted.")
    var foreground = false

    @Flag(
        help:
            "Show chunks decoded (no compressor, no filters): for readers without zlib/shuffle support (GDAL, netCDF-C, tensorstore), and for files that compress a variable differently or store it in the other byte order (each file's chunks are decoded with its own filters, little-endian)."
    )
    var decoded = false

    @Flag(
        help:
            "With --decoded: a variable whose files pack it differently (scale_factor, add_offset, _FillValue, missing_value) is served unpacked, each file's chunks with its own packing, as float64 with NaN for missing values, instead of stopping the mount."
    )
    var unpack = false

    @Option(
        help: ArgumentHelp(
            "With --decoded: serve VAR in chunks of this shape, each assembled from the source chunks it overlaps (repeatable; e.g. T2=1,250,320). Without it, a variable the files chunk differently is served in the most common shape.",
            valueName: "VAR=N,N,..."))
    var chunks: [String] = []

    @Option(
        help: ArgumentHelp(
            "Spell the metadata for these readers: any (Zarr as the specifications write it) or netcdf-c (netCDF-C's own Zarr v2 spelling, for ncdump, netCDF4-python and NCO: characters as <U1, scalars as shape [1], no chunk larger than its array, served decoded; numpy-based readers misread it). Zarr v2 only.",
            valueName: "any|netcdf-c"))
    var reader: ReaderSpelling = .any

    @Option(help: "Memory for cached chunks, in bytes or with a suffix (512MiB, 1GiB).")
    var cacheSize: String = "1GiB"

    @Option(
        help:
            "Chunks larger than twice this are fetched and cached in parts of this size, in parallel, and a read waits only for its parts (bytes or KiB/MiB suffix)."
    )
    var partSize: String = "8MiB"

    @Option(
        help:
            "Chunks fetched ahead when a reader goes through an array's chunks in order, doubling as it goes on, up to 8 times this (0: off)."
    )
    var readahead: Int = 8

    @Flag(help: "Let other users read the mount (needs user_allow_other in /etc/fuse.conf for non-root).")
    var allowOther = false

    @Option(help: "Seconds a read may wait for a chunk (retries included) before it fails with ETIMEDOUT (0: no bound; default 30, config key timeout).")
    var timeout: Int?

    @Flag(
        help:
            "Check stored chunks whose encoding carries a check (zlib's Adler-32, Fletcher-32) by decoding them before they are served; a chunk that fails is EIO (config key verify_chunks)."
    )
    var verifyChunks = false

    @Flag(help: "Mount over a directory that is not empty (its files are hidden until the unmount).")
    var nonempty = false

    @Option(help: .hidden)
    var readyFile: String?

    /// What the checks before a scan leave: the mountpoint, and the sources and sizes as given.
    private struct Preflight {
        var mountpoint: String
        var sources: SourceOptions
        var cacheBytes: Int
        var partBytes: Int
    }

    /// The checks every mount makes before it scans, in the caller and again in the daemon: the
    /// arguments fit together and the mountpoint can take a mount.
    private func preflight() throws -> Preflight {
        var sources = source
        guard let mountpoint = sources.sources.popLast() else { throw ValidationError("give the sources, then the mountpoint") }
        if let manifest {
            guard sources.sources.isEmpty, sources.urls == nil, sources.urlTemplate == nil, sources.references == nil else {
                throw ValidationError("--manifest replaces the sources: give the manifest and the mountpoint only")
            }
            sources.references = manifest
        }
        if repository.icechunk != nil {
            guard sources.sources.isEmpty, sources.urls == nil, sources.urlTemplate == nil, sources.references == nil, manifest == nil else {
                throw ValidationError("--icechunk replaces the sources: give the repository and the mountpoint only")
            }
            // A repository's arrays keep two fill values (the array's, for missing chunks, and
            // the CF _FillValue); the Zarr v2 form serves both, the v3 form does not yet.
            guard sources.zarrFormat != 3 else {
                throw ValidationError("--icechunk is served as Zarr v2 (its arrays' two fill values have no v3 form here yet): leave out --zarr-format 3")
            }
        }
        guard !sources.sources.isEmpty || sources.urls != nil || sources.urlTemplate != nil || sources.references != nil || repository.icechunk != nil
        else {
            throw ValidationError(
                "give the sources (paths, globs, URLs, a config, --urls, --url-template, --references or --manifest), then the mountpoint")
        }
        guard let budget = parseSize(cacheSize) else { throw ValidationError("--cache-size \(cacheSize): use bytes or a KiB/MiB/GiB suffix") }
        if let timeout, timeout < 0 { throw ValidationError("--timeout \(timeout): use a number of seconds (0: no bound)") }
        guard let part = parseSize(partSize), part >= 64 << 10 else {
            throw ValidationError("--part-size \(partSize): use at least 64KiB, in bytes or with a KiB/MiB/GiB suffix")
        }
        try checkMountpoint(mountpoint)
        return Preflight(mountpoint: mountpoint, sources: sources, cacheBytes: budget, partBytes: part)
    }

    /// Without --foreground: checks the arguments, forks, and returns in the child, which goes
    /// on as the daemon (`foreground` and `readyFile` set). The caller never returns: it waits
    /// for the mount and exits with its status. Does nothing when the process cannot fork
    /// safely; `run` then starts the daemon as a new program.
    mutating func detach() throws {
        guard !foreground, Daemon.canFork else { return }
        let mountpoint = try preflight().mountpoint
        let readyFile = Self.readyFilePath()
        switch try Daemon.fork(progressToTerminal: standardErrorIsLiveTerminal) {
        case .daemon:
            foreground = true
            self.readyFile = readyFile
        case .caller(let daemon):
            Glibc.exit(daemon.awaitMount(at: mountpoint, readyFile: readyFile))
        }
    }

    func run() async throws {
        let checked = try preflight()
        let sources = checked.sources
        let mountpoint = checked.mountpoint
        let budget = checked.cacheBytes
        let part = checked.partBytes
        if !foreground {
            try launchDaemon(mountpoint: mountpoint)
            return
        }
        if readyFile != nil {
            // The daemon leaves the caller's session, so signals aimed at the caller's terminal
            // or script do not reach it.
            _ = setsid()
        } else if let logFile = sources.logging.logFile {
            redirectStandardError(to: logFile)
        }
        var resolved = try sources.resolve()
        resolved.referencesAreManifest = manifest != nil
        if let icechunk = repository.icechunk { resolved.icechunk = IcechunkSource(root: icechunk, reference: repository.reference) }
        if manifest != nil, unpack || !chunks.isEmpty {
            throw ValidationError(
                "--unpack and --chunks act when files are combined, and a manifest holds a dataset combined at its scan: mount the sources instead")
        }
        if reader == .netcdfC, resolved.zarrFormat == .v3 {
            throw ValidationError("--reader netcdf-c spells Zarr v2 (netCDF-C 4.9 reads no Zarr v3): drop --zarr-format 3")
        }
        // netCDF-C's spelling is served decoded (see NetCDFCSpelling.decodedView).
        let decoded = self.decoded || reader == .netcdfC
        if unpack && !decoded { throw ValidationError("--unpack serves unpacked values, which only the decoded view shows: add --decoded") }
        resolved.unpack = unpack
        if !chunks.isEmpty && !decoded {
            throw ValidationError("--chunks serves chunks assembled from decoded ones, which only the decoded view shows: add --decoded")
        }
        for spec in chunks {
            guard let (variable, extents) = MountConfig.chunkSpec(spec) else {
                throw ValidationError("--chunks \(spec): write VAR=N,N,... with one positive extent per dimension (e.g. T2=1,250,320)")
            }
            resolved.chunks[variable] = extents
        }
        resolved.regrid = decoded
        let config = resolved
        // The daemon's stderr is the log file once it is mounted (or from the start in the
        // foreground), so its log goes to stderr.
        let logger = makeLogger(level: source.logging.logLevel)
        let logFile = source.logging.logFile
        try await runScan(config, logger: logger) { summary in
            var view: DecodedView?
            var viewWarnings: [String] = []
            if reader == .netcdfC {
                (view, viewWarnings) = try NetCDFCSpelling.decodedView(summary.dataset)
            } else if decoded {
                view = try DecodedView(summary.dataset)
                viewWarnings = view?.warnings ?? []
            }
            let store = ZarrStore(view?.dataset ?? summary.dataset, format: config.zarrFormat, nameLimit: ZarrStore.fileNameLimit)
            for warning in viewWarnings + store.omitted { printError("warning: \(warning)") }
            let verifyChunks = self.verifyChunks || config.verifyChunks
            let timeout = self.timeout ?? config.readTimeout ?? 30
            let tree = try ZarrTree(
                store, decodedPipelines: view?.pipelines ?? [:], unpackings: view?.unpackings ?? [:],
                byteSwaps: view?.byteSwaps ?? [:], verify: verifyChunks)
            var verification: (@Sendable (UInt64) -> ZarrTree.Decoding?)?
            if verifyChunks { verification = { [tree] inode in tree.verification(inode) } }
            let readTimeout: Duration? = timeout > 0 ? Duration.seconds(timeout) : nil
            let fetcher = StoreChunkFetcher(store: summary.store, partSize: UInt64(part), timeout: readTimeout)
            let reader = ChunkReader(
                objects: summary.dataset.objects, fetcher: fetcher, cacheBytes: budget,
                readahead: readahead, neighbour: { [tree] in tree.entry($0) }, chunkFiles: { [tree] in tree.chunkFiles(containing: $0) },
                partSize: UInt64(part),
                verification: verification, assembly: { [tree] in tree.assembly(array: $0, linear: $1) })
            let sourcesText = config.references.map { [$0] } ?? config.sources
            let started = Date()
            let remote = summary.store
            let filesystem = ZarrFilesystem(tree: tree, reader: reader, logger: logger, sourceAccess: allowOther) {
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
                    ("verify_chunks", .bool(verifyChunks)),
                    ("timeout_seconds", .int(Int64(timeout))),
                    ("uptime_seconds", .double(Date().timeIntervalSince(started).rounded())),
                    (
                        "reads",
                        .object([
                            ("cache_hits", .int(Int64(reads.hits))), ("cache_misses", .int(Int64(reads.misses))),
                            ("joined_fetches", .int(Int64(reads.joined))), ("readahead", .int(Int64(reads.readahead))),
                            ("in_flight", .int(Int64(reads.inFlight))),
                            ("bytes_fetched", .uint(reads.bytesFetched)), ("cached_bytes", .int(Int64(reads.cachedBytes))),
                            ("errors", .int(Int64(reads.errors))), ("verify_failures", .int(Int64(reads.verifyFailures))),
                        ])
                    ),
                ]
                if let remote {
                    let stats = remote.statistics
                    document.append(
                        (
                            "http",
                            .object([
                                ("requests", .int(Int64(stats.requests))), ("retries", .int(Int64(stats.retries))),
                                ("bytes", .uint(stats.bytes)),
                            ])
                        ))
                }
                return Array(JSON.object(document).rendered(pretty: true).utf8)
            }
            let mount = FuseMount(filesystem: filesystem)
            let readyFile = self.readyFile
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try mount.run(at: mountpoint, allowOther: allowOther) {
                            printError("mounted \(summary.files) files at \(mountpoint) (Zarr v\(config.zarrFormat.rawValue)\(decoded ? ", decoded" : ""))")
                            if let readyFile {
                                // Daemonised: the ready file first (the parent exits 2 when files
                                // were skipped, as `scan` does), then the log goes to --log-file
                                // or nowhere, so the parent sees EOF and finds the file complete.
                                let ready = "ready\nskipped \(summary.skipped.count)\n"
                                if !FileManager.default.createFile(atPath: readyFile, contents: Data(ready.utf8)) {
                                    logger.warning("cannot write the ready file; the parent finds the mount by asking it", metadata: ["file": "\(readyFile)"])
                                }
                                redirectStandardError(to: logFile)
                            }
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
            if !summary.skipped.isEmpty { throw ExitCode(2) }
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
                printError(
                    "error: \(mountpoint): a stale mount left by a daemon that is gone (Transport endpoint is not connected); run `zarrmount unmount \(mountpoint)` and mount again"
                )
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
        if !nonempty, let entries = try? FileManager.default.contentsOfDirectory(atPath: mountpoint), !entries.isEmpty {
            printError(
                "error: \(mountpoint): not empty (\(entries.count) entr\(entries.count == 1 ? "y" : "ies"), e.g. \(entries.sorted()[0])); the mount would hide them: use an empty directory, or --nonempty to mount over them anyway"
            )
            throw ExitCode(1)
        }
    }

    /// Where the daemon writes that the mount is ready, for the caller to read.
    private static func readyFilePath() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("zarrmount-ready-\(getpid())").path
        try? FileManager.default.removeItem(atPath: path)
        return path
    }

    /// Re-runs this command in the foreground as a new program in the background and returns
    /// once it reports the mount ready, or fails with its error output.
    private func launchDaemon(mountpoint: String) throws {
        let readyFile = Self.readyFilePath()
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let arguments = Array(CommandLine.arguments.dropFirst()) + ["--foreground", "--ready-file", readyFile]
        let daemon = try Daemon.spawn(executable: own, arguments: arguments, progressToTerminal: standardErrorIsLiveTerminal)
        let status = daemon.awaitMount(at: mountpoint, readyFile: readyFile)
        if status != 0 { throw ExitCode(status) }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what a zarrmount mount serves and its live counters (requests, bytes, cache hits and misses, errors).")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func run() throws {
        let logger = try logging.makeLogger()
        logger.debug("asking the daemon for its status", metadata: ["mountpoint": "\(mountpoint)"])
        guard let status = FuseMount.readStatus(mountpoint) else {
            printError("error: \(mountpoint): not a zarrmount mount (or its daemon is gone: run `zarrmount unmount \(mountpoint)`)")
            throw ExitCode(1)
        }
        print(status)
    }
}

struct Unmount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unmount",
        abstract: "Unmount a zarrmount mount (also one left stale by a killed daemon).")

    @Argument(help: "The mountpoint.")
    var mountpoint: String

    @Flag(help: "Detach now even if the mount is busy; it goes away when no longer used.")
    var lazy = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func run() throws {
        let logger = try logging.makeLogger()
        if FuseMount.probe(mountpoint) == .other, !Self.isMountPoint(mountpoint) {
            var info = stat()
            if stat(mountpoint, &info) != 0 {
                printError("error: \(mountpoint): \(String(cString: strerror(errno)))")
            } else {
                printError("error: \(mountpoint): not mounted")
            }
            throw ExitCode(1)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/fusermount3")
        process.arguments = (lazy ? ["-u", "-z"] : ["-u"]) + [mountpoint]
        logger.debug("running fusermount3", metadata: ["arguments": "\(process.arguments ?? [])"])
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

extension Unmount {
    /// Whether the kernel lists `path` as a mount point (`/proc/self/mountinfo`, whose fifth
    /// field is the mount point with space, tab, newline and backslash octal-escaped).
    static func isMountPoint(_ path: String) -> Bool {
        guard let real = realpath(path, nil) else { return false }
        let target = String(cString: real)
        free(real)
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 4 else { continue }
            let mountPoint = fields[4].replacingOccurrences(of: "\\040", with: " ").replacingOccurrences(of: "\\011", with: "\t")
                .replacingOccurrences(of: "\\012", with: "\n").replacingOccurrences(of: "\\134", with: "\\")
            if mountPoint == target { return true }
        }
        return false
    }
}

/// Points stderr (where the logger writes) at `path`, appending, or at /dev/null without one.
func redirectStandardError(to path: String?) {
    let target = path.map { open($0, O_WRONLY | O_APPEND | O_CREAT, 0o644) } ?? open("/dev/null", O_WRONLY)
    guard target >= 0 else {
        printError("warning: cannot open the log file \(path ?? "/dev/null"): \(String(cString: strerror(errno)))")
        return
    }
    dup2(target, STDERR_FILENO)
    close(target)
}

func parseSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10), ("B", 1)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        return Int(text.dropLast(suffix.count)).map { $0 * factor }
    }
    return Int(text)
}
