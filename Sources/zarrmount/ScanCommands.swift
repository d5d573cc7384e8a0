import ArgumentParser
import ByteSource
import Foundation
import HDF5Metadata
import Logging
import ObjectStore
import Scanner
import VirtualZarr
import JSONValue

extension FileOrder: ExpressibleByArgument {}
extension ErrorPolicy: ExpressibleByArgument {}
extension AttributePolicy: ExpressibleByArgument {}
extension ReaderSpelling: ExpressibleByArgument {}
extension FileLayout: ExpressibleByArgument {}
extension CompatPolicy: ExpressibleByArgument {}

/// The sources of a scan and how to combine them: paths and globs, or one YAML mount config,
/// with the config's main keys as flags (flags win over the config).
struct SourceOptions: ParsableArguments {
    @Argument(
        help: ArgumentHelp(
            "Files or quoted globs (`'data/*.nc'`, `'**/*.h5'`), s3://bucket/prefix/*.nc, http(s) URLs, or one YAML mount config.",
            valueName: "source"))
    var sources: [String] = []

    @Option(
        help:
            "Dimension to concatenate the files along (e.g. Time). Without it, the dimension whose coordinate differs between files is chosen (or the unlimited one without a coordinate), and stderr says which."
    )
    var concatDim: String?

    @Option(
        help:
            "Variables without the concat dimension found in several files. Default: keep the first file's, but stop when a dimension coordinate (lat, lon, level) or a numeric scalar differs between files. override: keep the first file's without comparing; equals: compare every such variable with the first file's and stop on a difference."
    )
    var compat: CompatPolicy?

    @Option(help: ArgumentHelp("Only these variables, comma-separated (with the coordinates of their dimensions).", valueName: "names"))
    var variables: String?

    @Option(help: ArgumentHelp("Leave these variables out, comma-separated (e.g. one whose chunking differs between files).", valueName: "names"))
    var dropVariables: String?

    @Option(help: "File order along the concat dimension: key (sorted path) or coordinate (first value of its coordinate).")
    var order: FileOrder?

    @Option(help: "Global and variable attributes: first (the first file's) or drop_conflicts.")
    var attrs: AttributePolicy?

    @Option(
        help:
            "combined (one dataset, default) or per_file (one group per file, named after it, nothing combined; files sharing a name are named by their directories, a/out.nc as a_out; each group's zarrmount_source attribute names its file)."
    )
    var layout: FileLayout?

    @Option(help: "On a file that cannot be scanned: fail (stop, default) or skip (leave it out; exit status 2).")
    var onError: ErrorPolicy?

    @Option(help: "Stack files along a new dimension of this name (use with --stack-regex).")
    var stackDim: String?

    @Option(help: "Regular expression whose first capture group, applied to each file name, gives its --stack-dim value.")
    var stackRegex: String?

    @Option(help: "Zarr format of the output: 2 (default) or 3.")
    var zarrFormat: Int?

    @Option(help: "Files scanned at once (default: the number of cores for local files, 128 for remote objects).")
    var concurrency: Int?

    @Option(
        help: ArgumentHelp(
            "Connections per server at most (default \(CurlEngine.Configuration().maxConnectionsPerHost)); lower it for a small server (MinIO or moto on a laptop) that times out under load.",
            valueName: "N"))
    var connections: Int?

    @Option(
        help: ArgumentHelp(
            "A file listing one URL or path per line (blank lines and # comments ignored), added to the sources.",
            valueName: "file"))
    var urls: String?

    @Option(help: "Serve an existing kerchunk reference file (path, http(s):// or s3:// URL) instead of scanning sources.")
    var references: String?

    @Option(
        help: ArgumentHelp(
            "With --references, and for the external raw-data files an HDF5 file names: also allow objects under this path or URL prefix (repeatable). By default a reference file may only name objects under its own directory (local) or at its own origin (URL), and an HDF5 file only files beside it or below.",
            valueName: "prefix"))
    var allowSource: [String] = []

    @Option(help: ArgumentHelp("A URL template over --range: {date} or {date:%Y%m%d} (%Y %m %d %j), {i} or {i:03}.", valueName: "template"))
    var urlTemplate: String?

    @Option(help: ArgumentHelp("The template's range, inclusive: dates 2060-01-01..2060-12-31 (daily) or integers 0..364.", valueName: "A..B"))
    var range: String?

    @Option(help: "S3-compatible endpoint (MinIO, Ceph, moto), addressed path-style; default: AWS.")
    var endpointUrl: String?

    @Option(
        help: ArgumentHelp(
            "PEM certificates to verify HTTPS servers against (default: CURL_CA_BUNDLE, SSL_CERT_FILE, or the system's).",
            valueName: "file"))
    var caBundle: String?

    @Option(help: "S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, or us-east-1).")
    var region: String?

    @Flag(help: "Send unsigned S3 requests (public buckets).")
    var anonymous = false

    @Flag(help: "Accept the requester-pays charges of the bucket.")
    var requesterPays = false

    @Option(
        help: ArgumentHelp(
            "Where per-file scan results are kept (default: $XDG_CACHE_HOME/zarrmount/manifests or ~/.cache/zarrmount/manifests).",
            valueName: "dir"))
    var cacheDir: String?

    @Flag(help: "Scan every file again instead of reusing results for unchanged objects.")
    var noCache = false

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        if sources.isEmpty && urls == nil && urlTemplate == nil && references == nil {
            throw ValidationError("give at least one source (or --urls FILE, --url-template with --range, or --references FILE)")
        }
        if (urlTemplate == nil) != (range == nil) { throw ValidationError("--url-template and --range go together") }
        if (stackDim == nil) != (stackRegex == nil) { throw ValidationError("--stack-dim and --stack-regex go together") }
        if let zarrFormat, ![2, 3].contains(zarrFormat) { throw ValidationError("--zarr-format must be 2 or 3") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if let connections, connections < 1 { throw ValidationError("--connections must be at least 1") }
    }

    /// The effective configuration: the YAML file's, overridden by flags.
    func resolve() throws -> MountConfig {
        var config: MountConfig
        if sources.count == 1, sources[0].hasSuffix(".yaml") || sources[0].hasSuffix(".yml") {
            config = try MountConfig.load(path: sources[0])
        } else {
            config = MountConfig(sources: sources)
        }
        if let urls {
            guard let text = try? String(contentsOfFile: urls, encoding: .utf8) else {
                throw ValidationError("--urls \(urls): cannot read the file")
            }
            config.sources += MountConfig.sourceList(text)
        }
        if let urlTemplate, let range {
            do {
                config.sources += try URLTemplate(template: urlTemplate, range: URLTemplate.parseRange(range)).expand()
            } catch let error as ObjectStoreError {
                throw ValidationError("\(error)")
            }
        }
        if let references {
            guard config.sources.isEmpty, config.references == nil else {
                throw ValidationError("--references replaces the sources: give one or the other")
            }
            config.references = references
        }
        config.allowSources += allowSource
        if let endpointUrl { config.endpointURL = endpointUrl }
        if let region { config.region = region }
        if let caBundle { config.caBundle = caBundle }
        if anonymous { config.anonymous = true }
        if requesterPays { config.requesterPays = true }
        if let cacheDir { config.cacheDirectory = cacheDir }
        if noCache { config.noCache = true }
        if let concatDim { config.concatDim = concatDim }
        if let compat { config.compat = compat }
        if let variables { config.variables = variables.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let dropVariables { config.dropVariables += dropVariables.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let order { config.order = order }
        if let attrs { config.attrs = attrs }
        if let layout { config.layout = layout }
        if let onError { config.onError = onError }
        if let stackDim, let stackRegex { config.stack = StackOptions(dimension: stackDim, pattern: stackRegex) }
        if let zarrFormat { config.zarrFormat = zarrFormat == 3 ? .v3 : .v2 }
        if let concurrency { config.concurrency = concurrency }
        if let connections { config.connections = connections }
        if config.layout == .perFile, config.concatDim != nil || config.stack != nil {
            throw ValidationError("layout per_file keeps every file in its own group: drop concat_dim and stack (--concat-dim, --stack-dim)")
        }
        return config
    }
}

extension MountConfig {
    var scanOptions: ScanOptions {
        var options = ScanOptions()
        options.combine = CombineOptions(concatDimension: concatDim, attributes: attrs)
        options.combine.layout = layout
        options.order = order
        options.onError = onError
        options.stack = stack
        options.combine.compat = compat
        options.combine.unpack = unpack
        options.combine.regrid = regrid
        options.combine.chunks = chunks
        options.variables = VariableSelection(keep: variables, drop: dropVariables)
        if let concurrency { options.concurrency = concurrency }
        options.allowSources = allowSources
        return options
    }
}

/// The object store for remote sources as `config` sets it up (endpoint, region, credentials,
/// connections, CA bundle), with its HTTP engine, which the caller shuts down.
func makeRemoteStore(_ config: MountConfig, logger: Logger) throws -> (RemoteStore, CurlEngine) {
    do {
        var s3 = S3Options(endpoint: config.endpointURL, region: config.region)
        s3.anonymous = config.anonymous
        s3.requesterPays = config.requesterPays
        let credentials = config.anonymous ? nil : try Credentials.resolve(environment: ProcessInfo.processInfo.environment)
        var engineConfiguration = CurlEngine.Configuration()
        if let connections = config.connections { engineConfiguration.maxConnectionsPerHost = connections }
        engineConfiguration.caBundle = config.certificateBundle(environment: ProcessInfo.processInfo.environment)
        if let bundle = engineConfiguration.caBundle, !FileManager.default.isReadableFile(atPath: bundle) {
            printError("error: \(bundle): the CA bundle (--ca-bundle, ca_bundle, CURL_CA_BUNDLE or SSL_CERT_FILE) cannot be read")
            throw ExitCode(1)
        }
        let transport = CurlEngine(configuration: engineConfiguration, logger: logger)
        return (RemoteStore(transport: transport, s3: s3, credentials: credentials, logger: logger), transport)
    } catch let error as ObjectStoreError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

/// `config`'s scan options, with an object store when a source (or the references) is remote;
/// the caller shuts the engine down.
func scanOptionsWithStore(_ config: MountConfig, logger: Logger, alwaysStore: Bool = false) throws -> (ScanOptions, CurlEngine?) {
    var options = config.scanOptions
    // References may point anywhere (their objects are only known once read), so they
    // always get a store; local objects in them are read directly all the same.
    if try alwaysStore || config.references != nil || config.icechunk != nil || config.sources.contains(where: { try Location(parsing: $0).isRemote }) {
        let (store, transport) = try makeRemoteStore(config, logger: logger)
        options.store = store
        return (options, transport)
    }
    return (options, nil)
}

/// Scans, reports, runs `then` on the result while the HTTP engine is still up, and shuts it down.
func runScan(_ config: MountConfig, logger: Logger, then: (ScanSummary) async throws -> Void) async throws {
    let (options, engine) = try scanOptionsWithStore(config, logger: logger)
    defer { engine?.shutdown() }
    if let icechunk = config.icechunk {
        let summary: ScanSummary
        do {
            summary = try await ReferenceLoader.loadIcechunk(
                icechunk, store: options.store, allowSources: config.allowSources, onError: config.onError, logger: logger)
        } catch let error as ScanError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        printError("read Icechunk repository \(icechunk.root): \(summary.files) objects, \(summary.arrayCount) arrays, \(summary.chunkCount) chunks")
        for warning in summary.dataset.warnings { printError("warning: \(warning)") }
        try await then(summary)
        return
    }
    if let references = config.references {
        let summary: ScanSummary
        do {
            summary = try await ReferenceLoader.load(
                references, store: options.store, allowSources: config.allowSources,
                onError: config.onError, requireManifest: config.referencesAreManifest, logger: logger)
        } catch let error as ScanError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if summary.fromManifest {
            printError("read manifest \(references): \(summary.files) objects, \(summary.arrayCount) arrays, \(summary.chunkCount) chunks")
        } else {
            printError("read references for \(summary.files) objects from \(references): \(summary.arrayCount) arrays, \(summary.chunkCount) chunks")
        }
        for warning in summary.dataset.warnings { printError("warning: \(warning)") }
        try await then(summary)
        return
    }
    try await then(try await scanAndReport(config, options: options, logger: logger))
}

func scanAndReport(_ config: MountConfig, options initial: ScanOptions, logger: Logger) async throws -> ScanSummary {
    let reporter = ProgressReporter()
    let summary: ScanSummary
    var options = initial
    if !config.noCache { options.cache = ManifestCache(directory: config.cacheDirectory ?? ManifestCache.defaultDirectory()) }
    do {
        summary = try await Scanner.scan(sources: config.sources, options: options, logger: logger) { progress in
            reporter.update(progress)
        }
    } catch let error as ScanError {
        reporter.finish()
        printError("error: \(error)")
        throw ExitCode(1)
    }
    reporter.finish()
    let seconds = summary.elapsed.seconds
    printError(
        String(
            format: "scanned %d files in %.2f s (%d from the manifest cache): %d arrays, %d chunks, %d reads, %@ read",
            summary.files, seconds, summary.cacheHits, summary.arrayCount, summary.chunkCount, summary.requests,
            formatBytes(summary.bytesRead)))
    if summary.combinedFromCache {
        printError("the combined dataset of these file versions and options came from the manifest cache (--no-cache scans and combines them again)")
    }
    if summary.maxRounds > 0, let store = summary.store {
        let stats = store.statistics
        printError(
            "remote: \(stats.requests) HTTP requests (\(stats.retries) retried), \(formatBytes(stats.bytes)) received, at most \(summary.maxRounds) dependent rounds per file"
        )
    }
    for warning in summary.dataset.warnings { printError("warning: \(warning)") }
    for note in summary.dataset.notes { printError("note: \(note)") }
    for (file, reason) in summary.skipped { printError("skipped: " + Scanner.skippedLine(file: file, reason: reason)) }
    return summary
}

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Scan netCDF-3 and netCDF-4/HDF5 files into one virtual Zarr dataset and write kerchunk references or a manifest.",
        discussion: """
            Reads only each file's metadata, combines the files (along --concat-dim when given) \
            and writes kerchunk reference JSON (version 1) that fsspec, xarray and VirtualiZarr \
            read. Exit status: 0 done, 1 failed, 2 done but some files were skipped (--on-error skip).
            """
    )

    @OptionGroup var source: SourceOptions

    @Option(help: "Where to write the kerchunk reference JSON.")
    var refs: String?

    @Option(
        help: ArgumentHelp(
            "Where to write the binary manifest (.zmf: the combined dataset with each object's identity, mounted with `zarrmount mount --manifest`).",
            valueName: "file"))
    var manifest: String?

    @Option(
        help: ArgumentHelp(
            "Scan only shard I of N (from 0): a contiguous block of the files in key order, the same on every machine. Writes the shard's files uncombined to --manifest; `zarrmount merge` combines the N parts.",
            valueName: "I/N"))
    var shard: String?

    @Option(
        help: ArgumentHelp(
            "Append the sources' new files to this manifest along --concat-dim, without scanning the files it holds (their identities are checked by listing them); sources it already holds are left out, so the same glob can be given again.",
            valueName: "manifest"))
    var update: String?

    func validate() throws {
        if refs == nil && manifest == nil { throw ValidationError("give --refs FILE (kerchunk JSON), --manifest FILE.zmf, or both") }
        if update != nil {
            guard shard == nil, source.references == nil else { throw ValidationError("--update takes sources; it cannot take --shard or --references") }
            guard source.concatDim != nil || source.sources.first.map({ $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }) == true else {
                throw ValidationError("--update appends along a dimension: give it with --concat-dim (as the first scan had it)")
            }
        }
        if shard != nil {
            guard manifest != nil, refs == nil else {
                throw ValidationError("--shard writes the shard's files to --manifest PART.zmf (no --refs): `zarrmount merge` combines the parts")
            }
            guard try parseShard() != nil else { throw ValidationError("--shard \(shard ?? ""): write I/N with 0 <= I < N (e.g. 0/8)") }
        }
    }

    private func parseShard() throws -> Shard? {
        guard let shard else { return nil }
        let parts = shard.split(separator: "/")
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]), count > 0, index >= 0, index < count else { return nil }
        return Shard(index: index, count: count)
    }

    func run() async throws {
        let config = try source.resolve()
        let logger = try source.logging.makeLogger()
        if let shard = try parseShard(), let manifest {
            guard config.references == nil else { throw ValidationError("--shard scans sources; it cannot take --references") }
            try await scanShard(config, shard: shard, to: manifest, logger: logger)
            return
        }
        if let update {
            guard config.concatDim != nil else {
                throw ValidationError("--update appends along a dimension: give it with --concat-dim (as the first scan had it)")
            }
            try await scanUpdate(config, existing: update, logger: logger) { summary in
                try writeScanOutputs(summary, refs: refs, manifest: manifest)
            }
            return
        }
        try await runScan(config, logger: logger) { summary in try writeScanOutputs(summary, refs: refs, manifest: manifest) }
    }
}

/// Writes a scan's (or a merge's) outputs: kerchunk references and/or a manifest file; exit
/// status 2 when files were skipped.
func writeScanOutputs(_ summary: ScanSummary, refs: String?, manifest: String?) throws {
    let writingStart = ContinuousClock.now
    if let refs {
        let text: String
        do { text = try KerchunkReferences.write(summary.dataset) } catch let error as MappingError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        do { try StoreExporter.writeFile(refs, Array(text.utf8)) } catch let error as ExportError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        // The references are Zarr v2 for numcodecs: what v2 cannot carry is left out, and said.
        for warning in ZarrStore(summary.dataset, format: .v2).omitted { printError("warning: \(warning)") }
        printError("wrote \(refs)")
    }
    if let manifest { try writeManifest(.combined(summary.dataset), to: manifest) }
    if let phases = summary.phases {
        printError(
            String(
                format: "time: listing %.2f s, scanning %.2f s, combining %.2f s, writing %.2f s", phases.listing.seconds,
                phases.scanning.seconds, phases.combining.seconds, (ContinuousClock.now - writingStart).seconds))
    }
    if !summary.skipped.isEmpty { throw ExitCode(2) }
}

/// Writes a manifest file, saying where and how large; an error is printed and exits 1.
func writeManifest(_ contents: ManifestFile.Contents, to path: String) throws {
    do {
        let bytes = try ManifestFile.encode(contents, writer: "zarrmount \(zarrmountVersion)")
        try StoreExporter.writeFile(path, bytes)
        printError("wrote \(path) (\(formatBytes(UInt64(bytes.count))))")
    } catch let error as ManifestFileError {
        printError("error: \(error)")
        throw ExitCode(1)
    } catch let error as ExportError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Scan netCDF-3 and netCDF-4/HDF5 files and write them as a real Zarr store (chunks copied, not re-encoded).",
        discussion: """
            The same scan as `zarrmount scan`, then every chunk's stored bytes are copied into a \
            Zarr v2 (default) or v3 directory store with consolidated metadata: a fast \
            NetCDF-to-Zarr converter. Exit status as for scan.
            """
    )

    @OptionGroup var source: SourceOptions

    @Option(help: "Directory to write the Zarr store to (created; must be empty or absent).")
    var zarr: String

    @Flag(
        help:
            "Write chunks decoded (no compressor, no filters), as `mount --decoded` serves them: for readers without the codecs, and for HDF5 filters only zarrmount decodes (lz4, lzf, szip, bitshuffle)."
    )
    var decoded = false

    func run() async throws {
        let config = try source.resolve()
        try await runScan(config, logger: try source.logging.makeLogger()) { summary in try await write(summary, format: config.zarrFormat) }
    }

    private func write(_ summary: ScanSummary, format: ZarrFormat) async throws {
        do {
            let omitted = try await StoreExporter.export(summary.dataset, format: format, to: zarr, store: summary.store, decoded: decoded)
            for warning in omitted { printError("warning: \(warning)") }
        } catch let error as MappingError {
            printError("error: \(error)")
            throw ExitCode(1)
        } catch let error as ExportError {
            printError("error: \(error)")
            throw ExitCode(1)
        } catch let error as CodecError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        printError("wrote \(zarr) (Zarr v\(format.rawValue)\(decoded ? ", decoded" : ""))")
        if !summary.skipped.isEmpty { throw ExitCode(2) }
    }
}

func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
