import HDF5Mapping
import ByteSource
import Foundation
import HDF5Metadata
import JSONValue
import Logging
import NetCDF3
import NetCDF3Mapping
import ObjectStore
import VirtualZarr

public enum FileOrder: String, Sendable, CaseIterable {
    /// Sorted by path or key (URL), whatever order the sources were given in.
    case key
    /// Sorted by the first value of the concat dimension's coordinate.
    case coordinate
}

public enum ErrorPolicy: String, Sendable, CaseIterable {
    /// The first file that cannot be scanned stops the scan.
    case fail
    /// Bad files are left out and listed in the summary.
    case skip
}

public struct StackOptions: Sendable {
    /// The new dimension's name.
    public var dimension: String
    /// A regular expression whose first capture group, applied to the file name, gives the
    /// coordinate value of each file.
    public var pattern: String

    public init(dimension: String, pattern: String) {
        self.dimension = dimension
        self.pattern = pattern
    }
}

public struct ScanOptions: Sendable {
    public var combine = CombineOptions()
    public var order: FileOrder = .key
    public var onError: ErrorPolicy = .fail
    public var stack: StackOptions?
    /// `--variables` and `--drop-variables`.
    public var variables = VariableSelection()
    public var mapping = MappingOptions()
    /// Files scanned at once (default: the cores for local files, 128 for remote objects).
    public var concurrency: Int?
    /// Lists and reads remote sources; required when any source is `s3://` or `http(s)://`.
    public var store: RemoteStore?
    /// Per-file results of earlier scans; `nil` scans every file.
    public var cache: ManifestCache?
    /// Prefixes beyond a file's own directory or origin that the external raw-data files it
    /// names may be under (`--allow-source`).
    public var allowSources: [String] = []
    /// Scan only this shard of the listing: the `index`-th (from 0) of `count` contiguous
    /// blocks of the files in key order, the same whoever lists them (`scan --shard I/N`).
    public var shard: Shard?
    /// Objects already scanned (`scan --update`): left out of the listing.
    public var excludedURLs: Set<String> = []
    /// Prove the first listed file's codec chains while the others are scanned
    /// (`CodecProof.proveAhead`); off where the files are not combined and proven here (a
    /// shard's scan, whose files `merge` proves).
    public var provesAhead = true

    public init() {}
}

/// One of `count` deterministic shards of a listing (`scan --shard I/N`).
public struct Shard: Sendable, Equatable {
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    /// The positions of shard `index` among `total` files in key order: contiguous blocks
    /// whose sizes differ by one at most, so concatenating the shards in order gives the
    /// listing again.
    public func range(of total: Int) -> Range<Int> {
        (total * index / count)..<(total * (index + 1) / count)
    }
}

/// Every file of a scan (or of one shard of it) as its own virtual dataset, before combining.
public struct ScannedParts: Sendable {
    public var parts: [(name: String, dataset: VirtualDataset)]
    public var skipped: [(file: String, reason: String)]
    /// Files in the whole listing (all shards).
    public var listedFiles: Int
    public var requests: Int = 0
    public var bytesRead: UInt64 = 0
    public var cacheHits: Int = 0
    public var maxRounds: Int = 0
    /// Listing the sources before the first file's scan (HTTP URLs are listed as they are
    /// scanned, so their listing counts as scanning).
    public var listing: Duration = .zero
    /// Listing done to every file scanned.
    public var scanning: Duration = .zero
    /// Chunks proven while the files were scanned (`CodecProof.proveAhead`).
    public var provenAhead = CodecProof.ProvenAhead()

    public init(parts: [(name: String, dataset: VirtualDataset)], skipped: [(file: String, reason: String)], listedFiles: Int) {
        self.parts = parts
        self.skipped = skipped
        self.listedFiles = listedFiles
    }
}

public struct ScanProgress: Sendable {
    public var filesDone: Int
    public var filesTotal: Int
    public var bytesRead: UInt64
    /// Metadata reads through the files' caches.
    public var requests: Int
    /// HTTP requests so far (listing included), for scans with an object store.
    public var httpRequests: Int?
    public var errors: Int
    public var elapsed: Duration
}

public struct ScanSummary: Sendable {
    public var dataset: VirtualDataset
    public var files: Int
    public var skipped: [(file: String, reason: String)]
    public var requests: Int
    public var bytesRead: UInt64
    public var elapsed: Duration
    /// Files taken from the manifest cache (no metadata read).
    public var cacheHits: Int
    /// The store the objects were listed and read through (for reading chunks afterwards).
    public var store: RemoteStore?
    /// The most dependent read rounds any remote file needed (0 for local scans).
    public var maxRounds: Int
    /// Read from a manifest file rather than kerchunk references or a scan.
    public var fromManifest = false
    /// The whole combined dataset came from the manifest cache (`ManifestCache.loadCombined`).
    public var combinedFromCache = false
    /// Where a scan's time went; nil for references and manifests read as they are.
    public var phases: ScanPhases?

    public var arrayCount: Int { dataset.arrays.count }
    public var chunkCount: Int { dataset.arrays.reduce(0) { $0 + $1.manifest.storedChunkCount } }
}

/// Where a scan's time went, for the summary and `tools/bench scale`.
public struct ScanPhases: Sendable {
    public var listing: Duration
    public var scanning: Duration
    /// Choosing variables, ordering, combining and proving the codecs.
    public var combining: Duration
}

/// Why a scan stops, or why one file of it failed. Each case carries what it is about; the
/// description is the sentence a user reads, naming the file or option and what to do.
public enum ScanError: Error, CustomStringConvertible, Sendable {
    /// The local sources could not be listed.
    case listing(ListingError)
    /// The object store failed or refused while listing or describing the sources.
    case store(ObjectStoreError)
    /// An HTTP URL with a glob: HTTP has no listing.
    case globOverHTTP(source: String)
    /// Remote sources without an object store (a caller's mistake, not the user's).
    case noObjectStore
    /// One file that could not be scanned, and why (the reason may already name the file).
    case file(url: String, reason: String)
    /// That file stopping the scan (`--on-error fail`): its reason, and how to go on without it
    /// (which a file `--on-error skip` left out does not need).
    case fileStopsScan(url: String, reason: String)
    /// Every file failed.
    case noFileScanned(failed: Int)
    /// Reading a chunk to prove a variable's codecs failed for a reason other than the codecs.
    case provingFilters(reason: String)
    /// Reading the bytes sampled to compare variables without the concat dimension failed.
    case samplingUnconcatenated(dimension: String?, reason: String)
    /// The files cannot be combined as asked.
    case combine(CombineError)
    /// `--variables` or `--drop-variables` names a variable no file has.
    case unknownVariable(option: String, name: String, suggestion: String?, variables: [String])
    /// `--compat equals` found a difference, or could not read what it compares.
    case compatEquals(variable: String?, detail: String)
    /// Files cannot be ordered by their concat coordinate.
    case ordering(file: String, detail: String)
    /// `--stack-regex` is not a regular expression, or matches no capture in a file's name.
    case stackRegex(pattern: String, file: String?, reason: String)
    /// A kerchunk reference file that cannot be served as it is.
    case references(location: String, detail: String)
    /// A file that is neither netCDF-3 nor HDF5 (netCDF-4), and what its first bytes say it is.
    case notNetCDF(file: String, what: FileSignature)
    /// One local file reached by two paths (a link), which a combine would hold twice.
    case sameFileTwice(first: String, second: String)
    /// A file shorter than its own chunk index says: an interrupted download or copy.
    case truncated(file: String, size: UInt64, variable: String, chunk: String, end: UInt64)

    public var description: String {
        switch self {
        case .listing(let error): error.description
        case .store(let error): error.description
        case .globOverHTTP(let source):
            "\(source): HTTP has no listing, so a glob cannot be expanded; give the URLs themselves, a file of URLs with --urls FILE, or a pattern with --url-template and --range"
        case .noObjectStore: "remote sources need an object store (internal error: none configured)"
        case .file(let url, let reason): reason.hasPrefix(url) ? reason : "\(url): \(reason)"
        case .fileStopsScan(let url, let reason):
            "\(ScanError.file(url: url, reason: reason))\(reason.hasSuffix(".") ? "" : ".") Leave it out of the sources, or scan with --on-error skip to leave out every file that cannot be scanned"
        case .noFileScanned(let failed): "no file could be scanned (\(failed) failed)"
        case .provingFilters(let reason): "proving the variables' filters: \(reason)"
        case .samplingUnconcatenated(let dimension, let reason):
            "comparing the stored bytes of variables without the \(dimension ?? "concat") dimension failed: \(reason). Retry, or skip the comparison with --compat override"
        case .combine(let error): error.description
        case .unknownVariable(let option, let name, let suggestion, let variables):
            "\(option) \(name): no file has a variable \(name)\(suggestion.map { "; did you mean \($0)?" } ?? ".")"
                + " The variables: \(variables.prefix(40).joined(separator: ", "))\(variables.count > 40 ? ", ..." : "")"
        case .compatEquals(_, let detail): "--compat equals: \(detail)"
        case .ordering(_, let detail): detail
        case .stackRegex(let pattern, let file, let reason):
            file.map { "\($0): --stack-regex \(pattern) \(reason)" } ?? "--stack-regex \(pattern): \(reason)"
        case .references(_, let detail): detail
        case .notNetCDF(let file, let what):
            "\(file): \(what); zarrmount reads netCDF-3 and netCDF-4/HDF5 files"
        case .sameFileTwice(let first, let second):
            "\(second) is the same file as \(first) (one is a link to the other), so the combined dataset would hold its values twice. Name each file once: leave the link out of the sources or the glob"
        case .truncated(let file, let size, let variable, let chunk, let end):
            "\(file) is truncated: it is \(size) bytes, but chunk \(chunk) of \(variable) ends at byte \(end) (an interrupted download or copy?). Fetch it again"
        }
    }
}

/// Lists the sources, scans every file concurrently (bounded), and combines the per-file
/// virtual datasets in a deterministic order, whatever order the files finished in.
public enum Scanner {
    public static func scan(
        sources: [String], options: ScanOptions, logger: Logger,
        progress: @escaping @Sendable (ScanProgress) -> Void = { _ in }
    ) async throws -> ScanSummary {
        let start = ContinuousClock.now
        var listing = try await listSources(sources, options: options)
        // A scan of object versions scanned and combined before with the same options is the
        // dataset it gave then (`ManifestCache.loadCombined`): no per-file results to load,
        // nothing to combine or prove.
        var combinedKey: String?
        if let cache = options.cache, options.shard == nil, options.excludedURLs.isEmpty {
            try await listing.describeCachedURLs(store: options.store, cache: cache, width: concurrency(options, listing))
            if listing.unlisted.isEmpty, !listing.listed.isEmpty, listing.listed.allSatisfy({ $0.identity != nil }) {
                let key = ManifestCache.combinedKey(listing.listed, options: options, mapping: mappingOptions(options, listedTotal: listing.listedTotal))
                combinedKey = key
                if let dataset = cache.loadCombined(key: key, listed: listing.listed) {
                    logger.info("combined dataset from the manifest cache", metadata: ["files": "\(listing.listed.count)"])
                    let elapsed = ContinuousClock.now - start
                    progress(
                        ScanProgress(
                            filesDone: listing.listed.count, filesTotal: listing.listed.count, bytesRead: 0, requests: 0,
                            httpRequests: listing.remote ? options.store?.statistics.requests : nil, errors: 0, elapsed: elapsed))
                    var summary = ScanSummary(
                        dataset: dataset, files: listing.listed.count, skipped: [], requests: 0, bytesRead: 0, elapsed: elapsed,
                        cacheHits: listing.listed.count, store: options.store, maxRounds: 0)
                    summary.combinedFromCache = true
                    summary.phases = ScanPhases(listing: listing.done - start, scanning: .zero, combining: ContinuousClock.now - listing.done)
                    return summary
                }
            }
        }
        let scanned = try await scanListed(listing, options: options, start: start, logger: logger, progress: progress)
        let summary = try await combine(scanned, options: options, start: start) { progress($0) }
        if let combinedKey, let cache = options.cache, summary.skipped.isEmpty {
            cache.storeCombined(summary.dataset, key: combinedKey, listed: listing.listed)
        }
        return summary
    }

    /// Lists the sources (or the shard of them `options.shard` names) and scans every file into
    /// its own dataset, in key order (or the order given, under `--order coordinate`).
    public static func scanParts(
        sources: [String], options: ScanOptions, logger: Logger,
        progress: @escaping @Sendable (ScanProgress) -> Void = { _ in }
    ) async throws -> ScannedParts {
        let start = ContinuousClock.now
        let listing = try await listSources(sources, options: options)
        return try await scanListed(listing, options: options, start: start, logger: logger, progress: progress)
    }

    /// The files to scan, in the order they join the dataset; HTTP URLs still to be described
    /// (`unlisted`) are described as their scans start.
    struct SourceListing {
        var listed: [ListedObject]
        var unlisted: [(url: String, firstBytes: Bool)]
        /// Files in the whole listing (every shard's).
        var listedTotal: Int
        var remote: Bool
        var description: HTTPDescription
        var done: ContinuousClock.Instant

        /// Describes every HTTP URL still unlisted when each has a cached result (a HEAD each, as
        /// its scan would make), so that the combined dataset's cache can be looked up; URLs
        /// without one stay unlisted, to be listed by the GET their scan starts with.
        mutating func describeCachedURLs(store: RemoteStore?, cache: ManifestCache, width: Int) async throws {
            guard let store, !unlisted.isEmpty, unlisted.allSatisfy({ !$0.firstBytes && cache.hasEntry(for: $0.url) }) else { return }
            let urls = unlisted.map(\.url)
            let description = description
            do {
                try await BoundedTaskGroup.forEach(count: urls.count, width: width) { index in
                    try await store.describe(httpURL: urls[index], firstBytes: false, http: description)
                } consume: { index, object in
                    listed[index] = object
                }
            } catch let error as ObjectStoreError {
                throw ScanError.store(error)
            }
            unlisted = []
        }
    }

    /// Files scanned at once: `--concurrency`, else the cores for local files and 128 for remote objects.
    static func concurrency(_ options: ScanOptions, _ listing: SourceListing) -> Int {
        options.concurrency ?? (listing.remote ? 128 : max(2, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// What each file's mapping reads and inlines for this scan. `listedTotal` is the whole
    /// listing's count, not the shard's: every shard maps its files as a scan of all of them would.
    static func mappingOptions(_ options: ScanOptions, listedTotal: Int) -> MappingOptions {
        var mapping = options.mapping
        if let dimension = options.combine.concatDimension {
            mapping.inlineVariables.insert(dimension)
            if options.combine.layout == .combined { mapping.timeVariablesAlong = dimension }
        }
        // The files' dimension coordinates are read to choose the concat dimension when none is
        // named, and to check that the others agree unless `--compat override` says to keep the
        // first file's.
        let infers = options.combine.concatDimension == nil && options.stack == nil
        if options.combine.layout == .combined, listedTotal > 1, infers || options.combine.compat != .override {
            mapping.inlineComparedValues = true
        }
        return mapping
    }

    static func listSources(_ sources: [String], options: ScanOptions) async throws -> SourceListing {
        var listed: [ListedObject]
        var listedTotal = 0
        let remote = try sources.contains { try Location(parsing: $0).isRemote }
        if remote && options.store == nil {
            throw ScanError.noObjectStore
        }
        // An HTTP URL is listed with a GET of the bytes the scan would read first, unless its
        // result is probably cached: then a HEAD tells whether it still is.
        let cache = options.cache
        let description = HTTPDescription(
            firstBytes: BlockCache<RemoteObjectSource>.Policy().firstFetchSize,
            headOnly: { url in cache?.hasEntry(for: url) ?? false })
        // When every source is an HTTP URL, the files and their order are known before any is
        // listed: each file's scan then starts as soon as its own listing GET is answered,
        // instead of after the slowest of them (a tenth of a second for a year at 20 ms).
        var unlisted: [(url: String, firstBytes: Bool)] = []
        for source in sources {
            // A server answers a glob with 404; say why instead.
            if case .http(let url)? = try? Location(parsing: source), url.split(separator: "?", maxSplits: 1)[0].contains("*") {
                throw ScanError.globOverHTTP(source: source)
            }
        }
        do {
            let httpURLs = try sources.compactMap { source -> String? in
                if case .http(let url) = try Location(parsing: source) { return url }
                return nil
            }
            if options.store != nil, !sources.isEmpty, httpURLs.count == sources.count {
                var seen = options.excludedURLs
                var urls = httpURLs.filter { seen.insert($0).inserted }
                if options.order == .key || options.shard != nil { urls.sort() }
                listedTotal = urls.count
                if let shard = options.shard { urls = Array(urls[shard.range(of: urls.count)]) }
                var budget = description.budget
                unlisted = Array(zip(urls, description.firstBytesPlan(urls, budget: &budget)))
                listed = urls.map { ListedObject(url: $0, size: 0, identity: nil) }
            } else if let store = options.store {
                listed = try await store.list(sources, http: description)
            } else {
                listed = try LocalStore.list(sources)
            }
        } catch let error as ListingError {
            throw ScanError.listing(error)
        } catch let error as ObjectStoreError {
            throw ScanError.store(error)
        }
        if unlisted.isEmpty {
            if !options.excludedURLs.isEmpty { listed.removeAll { options.excludedURLs.contains($0.url) } }
            if options.order == .key || options.shard != nil {
                // Files join the concat dimension in key order whatever order they were named in.
                listed.sort { $0.url < $1.url }
            }
            listedTotal = listed.count
            if let shard = options.shard { listed = Array(listed[shard.range(of: listed.count)]) }
        }
        if options.combine.layout == .combined { try checkEachFileOnce(listed) }
        return SourceListing(
            listed: listed, unlisted: unlisted, listedTotal: listedTotal, remote: remote, description: description, done: ContinuousClock.now)
    }

    /// Scans every listed file into its own dataset (from the per-file cache where it can).
    static func scanListed(
        _ listing: SourceListing, options: ScanOptions, start: ContinuousClock.Instant, logger: Logger,
        progress: @escaping @Sendable (ScanProgress) -> Void
    ) async throws -> ScannedParts {
        var listed = listing.listed
        let unlisted = listing.unlisted
        let listedTotal = listing.listedTotal
        let remote = listing.remote
        let description = listing.description
        let listingDone = listing.done
        let cache = options.cache
        let concurrency = concurrency(options, listing)
        let store = options.store
        let allowSources = options.allowSources
        logger.info("scanning files", metadata: ["count": "\(listed.count)"])
        let mappingOptions = mappingOptions(options, listedTotal: listedTotal)

        var outcomes: [Int: FileOutcome] = [:]
        // Every file's dataset is held until all are scanned: what they share is held once.
        var shared = SharedDescriptions()
        var tally = ScanTally()
        var schedule = ScanSchedule(fileCount: listed.count, concurrency: concurrency, policy: options.onError, listed: unlisted.isEmpty)
        func reportProgress() {
            progress(
                ScanProgress(
                    filesDone: tally.done, filesTotal: listed.count, bytesRead: tally.bytes, requests: tally.requests,
                    httpRequests: remote ? options.store?.statistics.requests : nil, errors: tally.errors,
                    elapsed: ContinuousClock.now - start))
        }
        // The first file listed has its chains proven while the others are scanned, which
        // leaves the proof after the combine little or nothing to read. The first listed, not
        // the first done: the proofs a manifest cache keeps are then the same on every scan.
        var proofAhead: Task<CodecProof.ProvenAhead, Never>?
        defer { proofAhead?.cancel() }
        try await withThrowingTaskGroup(of: ScanStep.self) { group in
            func launch(_ files: [Int]) {
                for index in files {
                    let object = listed[index]
                    listed[index].firstBytes = []
                    group.addTask {
                        if let cached = cache?.load(object, options: mappingOptions) { return .scanned(index, .cached(cached)) }
                        var outcome = await scanFile(object, mapping: mappingOptions, store: store)
                        if case .scanned(var dataset, let counters) = outcome {
                            if dataset.objects.count > 1 {
                                // External raw-data files are found and confined on every scan:
                                // the cache is keyed by this file alone, and the allowed sources
                                // may differ from one scan to the next.
                                do {
                                    try await ExternalFiles.resolve(&dataset, file: object, store: store, allowSources: allowSources)
                                    outcome = .scanned(dataset, counters)
                                } catch let error as ScanError {
                                    outcome = .failed(error)
                                } catch {
                                    outcome = .failed(ScanError.file(url: object.url, reason: "\(error)"))
                                }
                            } else {
                                cache?.store(dataset, for: object, options: mappingOptions)
                            }
                        }
                        return .scanned(index, outcome)
                    }
                }
            }
            func perform(_ action: ScanSchedule.Action) throws {
                switch action {
                case .start(let files): launch(files)
                case .stop(let failed):
                    group.cancelAll()
                    if case .failed(.file(let url, let reason))? = outcomes[failed] { throw ScanError.fileStopsScan(url: url, reason: reason) }
                    if case .failed(let error)? = outcomes[failed] { throw error }
                }
            }
            if let store {
                for (index, url) in unlisted.enumerated() {
                    group.addTask {
                        do {
                            return .listed(index, try await store.describe(httpURL: url.url, firstBytes: url.firstBytes, http: description))
                        } catch let error as ObjectStoreError {
                            throw ScanError.store(error)
                        }
                    }
                }
            }
            try perform(schedule.start())
            while !schedule.isDone, let step = try await group.next() {
                switch step {
                case .listed(let index, let object):
                    listed[index] = object
                    try perform(schedule.listed(index))
                case .scanned(let index, var outcome):
                    if index == 0, options.provesAhead, let dataset = outcome.dataset {
                        proofAhead = Task { await CodecProof.proveAhead(dataset, store: store, cache: cache) }
                    }
                    outcome.compact(sharing: &shared)
                    outcomes[index] = outcome
                    tally.record(outcome)
                    if case .failed(let error) = outcome {
                        // The summary reports it once (as `skipped:` or `error:`); the log line is for tracing.
                        logger.debug("file failed", metadata: ["file": "\(listed[index].url)", "reason": "\(error)"])
                    }
                    reportProgress()
                    try perform(schedule.finished(index, failed: outcome.dataset == nil))
                }
            }
        }

        var parts: [(name: String, dataset: VirtualDataset)] = []
        var skipped: [(String, String)] = []
        for index in listed.indices {
            switch outcomes[index]! {
            case .cached(let dataset), .scanned(let dataset, _): parts.append((listed[index].url, dataset))
            case .failed(let error): skipped.append((listed[index].url, error.description))
            }
        }
        // Dropping the per-file outcomes (a year of files holds a few hundred thousand objects)
        // takes about as long as writing the references; another thread does it meanwhile.
        let leftovers = Leftovers(outcomes)
        outcomes = [:]
        DispatchQueue.global().async { leftovers.drop() }
        var scanned = ScannedParts(parts: parts, skipped: skipped, listedFiles: listedTotal)
        scanned.requests = tally.requests
        scanned.bytesRead = tally.bytes
        scanned.cacheHits = tally.cacheHits
        scanned.maxRounds = tally.maxRounds
        scanned.listing = listingDone - start
        scanned.scanning = ContinuousClock.now - listingDone
        if let proofAhead {
            scanned.provenAhead = await proofAhead.value
            logger.debug("chains proven while the files were scanned", metadata: ["chunks": "\(scanned.provenAhead.count)"])
        }
        return scanned
    }

    /// Combines scanned files (of one scan, or of every shard of one, in shard order) into one
    /// dataset and proves its filters: the same rules and errors whichever way they were scanned.
    public static func combine(
        _ scanned: ScannedParts, options: ScanOptions, start: ContinuousClock.Instant = .now,
        progress: @escaping @Sendable (ScanProgress) -> Void = { _ in }
    ) async throws -> ScanSummary {
        var parts = scanned.parts
        let skipped = scanned.skipped
        let store = options.store
        let cache = options.cache
        let remote = store != nil
        func reportProgress() {
            progress(
                ScanProgress(
                    filesDone: parts.count + skipped.count, filesTotal: parts.count + skipped.count, bytesRead: scanned.bytesRead,
                    requests: scanned.requests, httpRequests: remote ? store?.statistics.requests : nil, errors: skipped.count,
                    elapsed: ContinuousClock.now - start))
        }
        if parts.isEmpty { throw ScanError.noFileScanned(failed: skipped.count) }
        let combineStart = ContinuousClock.now
        var dataset = try await combineParts(parts, options: options, store: store)
        if !skipped.isEmpty { recordSkipped(skipped, in: &dataset) }
        if let warning = uncheckedObjectsWarning(dataset.objects) { dataset.warnings.append(warning) }
        do {
            try await CodecProof.prove(&dataset, store: store, cache: cache, provenAhead: scanned.provenAhead)
            // The proof's requests belong in the last progress line, as in the summary.
            reportProgress()
        } catch let error as ObjectStoreError {
            throw ScanError.provingFilters(reason: "\(error)")
        } catch let error as ByteSourceError {
            throw ScanError.provingFilters(reason: "\(error)")
        }
        let fileCount = parts.count
        let leftovers = Leftovers(parts)
        parts = []
        DispatchQueue.global().async { leftovers.drop() }
        var summary = ScanSummary(
            dataset: dataset, files: fileCount, skipped: skipped, requests: scanned.requests, bytesRead: scanned.bytesRead,
            elapsed: ContinuousClock.now - start, cacheHits: scanned.cacheHits, store: store, maxRounds: scanned.maxRounds)
        summary.phases = ScanPhases(listing: scanned.listing, scanning: scanned.scanning, combining: ContinuousClock.now - combineStart)
        return summary
    }

    /// The global attribute that names the files `--on-error skip` left out, each with why: the
    /// exit status and the `skipped:` lines are gone once the dataset is mounted or written,
    /// and a reader would otherwise take it for the whole archive.
    public static let skippedFilesAttribute = "zarrmount_skipped_files"

    /// `FILE: why` for a file left out (most reasons already start with the file's name).
    public static func skippedLine(file: String, reason: String) -> String {
        reason.hasPrefix(file) ? reason : "\(file): \(reason)"
    }

    static func recordSkipped(_ skipped: [(file: String, reason: String)], in dataset: inout VirtualDataset) {
        let value = JSON.array(skipped.map { JSON.string(skippedLine(file: $0.file, reason: $0.reason)) })
        if let root = dataset.groups.firstIndex(where: { $0.path.isEmpty }) {
            dataset.groups[root].attributes.removeAll { $0.0 == skippedFilesAttribute }
            dataset.groups[root].attributes.append((skippedFilesAttribute, value))
        } else {
            dataset.groups.insert(VirtualGroup(path: "", attributes: [(skippedFilesAttribute, value)]), at: 0)
        }
    }

    /// Says so when objects came without an ETag or a Last-Modified date: their reads cannot be
    /// made conditional, so a change after the scan would be served without a word.
    static func uncheckedObjectsWarning(_ objects: [ObjectInfo]) -> String? {
        let unchecked = objects.filter { $0.identity == nil }
        guard let first = unchecked.first else { return nil }
        let which = unchecked.count == 1 ? first.url : "\(unchecked.count) objects (\(first.url) and others)"
        return
            "\(which) came with neither an ETag nor a Last-Modified date, so a change after the scan cannot be detected: reads would serve the new bytes. Mount again after the archive changes; --verify-chunks checks compressed chunks as they are read"
    }

    /// Stops when two listed paths are one local file (same device and inode): a `latest.nc`
    /// link beside the day it points to would repeat that day's instants in the combined axis.
    static func checkEachFileOnce(_ listed: [ListedObject]) throws {
        var firstPath: [SIMD2<UInt64>: String] = [:]
        for object in listed {
            guard case .file(let device, let inode, _, _, _)? = object.identity else { continue }
            if let first = firstPath.updateValue(object.url, forKey: SIMD2(device, inode)) {
                throw ScanError.sameFileTwice(first: first, second: object.url)
            }
        }
    }

    /// One file parsed and mapped; external raw-data files it names stay unresolved after the
    /// file's own object (`ExternalFiles.resolve` finds and confines them).
    static func scanFile(_ object: ListedObject, mapping: MappingOptions, store: RemoteStore?) async -> FileOutcome {
        do {
            let statistics = ReadStatistics()
            var dataset: VirtualDataset
            if let store, try Location(parsing: object.url).isRemote {
                // Remote: many small concurrent reads through a page cache, so a file's metadata
                // arrives in a few dependent rounds.
                let remote = RemoteObjectSource(store: store, object: object)
                let cache = BlockCache(remote, size: object.size, statistics: statistics)
                cache.seed(offset: 0, bytes: object.firstBytes)
                let (mapped, rounds) = try await SerialTaskExecutor.run {
                    try await ReadRounds.measure {
                        try await mapFile(
                            cache, size: object.size, policy: .concurrent, mapping: mapping,
                            fetch: { offset, length in try await cache.read(offset: offset, length: length) })
                    }
                }
                cache.noteRounds(rounds)
                dataset = mapped
            } else {
                let file = try FileSource(path: object.url)
                let cache = BlockCache(
                    file, size: object.size, policy: .init(pageSize: 4096, firstFetchSize: 64 * 1024, batchingTurns: 0),
                    statistics: statistics)
                dataset = try await mapFile(
                    cache, size: object.size, policy: .sequential, mapping: mapping,
                    fetch: { offset, length in try file.readSynchronously(offset: offset, length: length) })
            }
            dataset.objects = [ObjectInfo(listed: object)] + dataset.objects.dropFirst()
            try checkChunksWithinFile(dataset, url: object.url, size: object.size)
            return .scanned(dataset, statistics.snapshot)
        } catch {
            return .failed(ScanError.file(url: object.url, reason: "\(error)"))
        }
    }

    /// Refuses a file whose chunk index points past its end: its metadata parses (netCDF-3 keeps
    /// it in front; HDF5 often does), so only the chunks' places tell that the rest is missing,
    /// and netCDF-C reads the missing values as zeros.
    static func checkChunksWithinFile(_ dataset: VirtualDataset, url: String, size: UInt64) throws {
        for array in dataset.arrays {
            // Set entries only: a huge declared grid reads as its fill chunk everywhere else.
            try array.manifest.forEachSet { linear, entry in
                guard case .reference(0, let offset, let length) = entry else { return }
                let (end, overflow) = offset.addingReportingOverflow(length)
                guard overflow || end > size else { return }
                let chunk = array.manifest.coordinates(linear).map(String.init).joined(separator: ".")
                throw ScanError.truncated(
                    file: url, size: size, variable: array.path, chunk: chunk.isEmpty ? "0" : chunk, end: overflow ? .max : end)
            }
        }
    }

    /// One file as a virtual dataset, by the parser its first bytes call for: netCDF-3 by its
    /// magic number, HDF5 (netCDF-4) otherwise (the HDF5 parser also finds a signature after a
    /// user block). A file that is neither is named for what it is.
    static func mapFile(
        _ source: some RandomAccessSource, size: UInt64, policy: ReadPolicy, mapping: MappingOptions, fetch: @escaping ByteFetcher
    ) async throws -> VirtualDataset {
        let signature = FileSignature.classify(try await source.read(offset: 0, length: Int(min(size, UInt64(FileSignature.bytesNeeded)))))
        if signature.isNetCDF3 {
            let header = try await NetCDF3File.parse(source)
            return try await NetCDF3Mapping.dataset(from: header, objectID: 0, options: mapping, fetch: fetch)
        }
        let info: HDF5FileInfo
        do {
            info = try await HDF5File.parse(source, policy: policy)
        } catch let error as HDF5FileError where error.underlying.kind == .notHDF5 && signature != .hdf5 {
            throw ScanError.notNetCDF(file: source.name, what: signature)
        }
        return try await NetCDFMapping.dataset(from: info, objectID: 0, options: mapping, fetch: fetch)
    }

    /// Orders files by the first value of their concat coordinate, decoded with each file's own
    /// CF time units where it has them (files counting from their own start share no raw scale).
    static func sortByCoordinate(_ parts: [(name: String, dataset: VirtualDataset)], dimension: String) throws -> [(name: String, dataset: VirtualDataset)] {
        // WRF files have no coordinate along Time: their `Times` rows, read with the scan, order them.
        let hasCoordinate = parts.contains { part in part.dataset.arrays.contains { $0.name == dimension && $0.dimensionNames == [dimension] } }
        if !hasCoordinate {
            let keyed = parts.map { part in
                (part.dataset.arrays.first { $0.path == "Times" && $0.dimensionNames.first == dimension }.flatMap(WRFTimes.rows)?.compactMap { $0 }.first, part)
            }
            if let missing = keyed.first(where: { $0.0 == nil }) {
                throw ScanError.ordering(
                    file: missing.1.name, detail: "\(missing.1.name): no \(dimension) coordinate values (nor WRF Times rows) to order by")
            }
            return keyed.sorted { $0.0!.lexicographicallyPrecedes($1.0!) }.map(\.1)
        }
        var calendar: (CFCalendar, String)?
        let keyed = try parts.map { part -> (Double, (name: String, dataset: VirtualDataset)) in
            guard let coordinate = part.dataset.arrays.first(where: { $0.name == dimension && $0.dimensionNames == [dimension] }),
                coordinate.manifest.count == 1, case .inline(let bytes) = coordinate.manifest[0],
                let value = NumericValues.doubles(bytes, dtype: coordinate.dtype, count: 1)?.first
            else {
                throw ScanError.ordering(file: part.name, detail: "\(part.name): no \(dimension) coordinate values to order by")
            }
            guard let units = CombineRules.timeUnits(coordinate) else { return (value, part) }
            if let (known, file) = calendar, known != units.calendar,
                !(known.agreesFromTheReform(with: units.calendar) && units.isFromTheReform(value))
            {
                throw ScanError.ordering(
                    file: part.name,
                    detail:
                        "coordinate \(dimension) uses the \(known.rawValue) calendar in \(file) but the \(units.calendar.rawValue) calendar in \(part.name); instants of different calendars cannot share one axis. Combine the files of each calendar separately"
                )
            }
            calendar = (units.calendar, part.name)
            return (CFTimeConversion.instant(value, units: units), part)
        }
        return keyed.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Gives every non-coordinate array a new leading dimension of length one, and each file a
    /// coordinate value for it taken from its name.
    static func stackParts(_ parts: [(name: String, dataset: VirtualDataset)], stack: StackOptions) throws -> [(name: String, dataset: VirtualDataset)] {
        let regex: Regex<AnyRegexOutput>
        do { regex = try Regex(stack.pattern) } catch {
            throw ScanError.stackRegex(pattern: stack.pattern, file: nil, reason: "not a valid regular expression (\(error))")
        }
        var values: [String] = []
        for part in parts {
            let fileName = (part.name as NSString).lastPathComponent
            guard let match = try? regex.firstMatch(in: fileName), match.output.count > 1,
                let captured = match.output[1].substring
            else {
                throw ScanError.stackRegex(pattern: stack.pattern, file: part.name, reason: "has no capture group matching this file name")
            }
            values.append(String(captured))
        }
        let integers = values.compactMap { Int64($0) }
        // Two files with one value would be one member twice along the new dimension.
        var holder: [String: Int] = [:]
        for (index, value) in values.enumerated() {
            let key = integers.count == values.count ? String(integers[index]) : value
            if let earlier = holder[key] {
                throw ScanError.stackRegex(
                    pattern: stack.pattern, file: parts[index].name,
                    reason:
                        "gives \(stack.dimension) \(key) to this file and to \(parts[earlier].name): each file needs a value of its own; make the capture group take the whole \(stack.dimension) (ens(\\d+), not ens(\\d))"
                )
            }
            holder[key] = index
        }
        return parts.enumerated().map { index, part in
            var dataset = part.dataset
            dataset.arrays = dataset.arrays.map { array in
                if array.dimensionNames.count == 1 && array.dimensionNames[0] == array.name { return array }
                return array.prependingAxis(named: stack.dimension)
            }
            let coordinate: VirtualArray
            if integers.count == values.count {
                coordinate = VirtualArray.inlineCoordinate(name: stack.dimension, int64: [integers[index]])
            } else {
                coordinate = VirtualArray.inlineCoordinate(
                    name: stack.dimension, strings: [values[index]],
                    width: values.map(\.utf8.count).max() ?? 1)
            }
            dataset.arrays.append(coordinate)
            return (part.name, dataset)
        }
    }
}

/// What a child of the scan's task group finished: a file's listing, or its scan.
private enum ScanStep: Sendable {
    case listed(Int, ListedObject)
    case scanned(Int, FileOutcome)
}

/// Values to free on another thread: the last reference to them is dropped by `drop()`, so their
/// deallocation runs wherever that is called.
private final class Leftovers: @unchecked Sendable {
    // Written once here, then only by `drop()`: no two threads touch it at once.
    private var value: Any?

    init(_ value: Any) { self.value = value }

    func drop() { value = nil }
}

extension ObjectInfo {
    /// What a listing found, with a local file's owner and permission bits.
    public init(listed object: ListedObject) {
        var access: FileAccess?
        if let owner = object.owner, let group = object.group, let permissions = object.permissions {
            access = FileAccess(uid: owner, gid: group, mode: permissions)
        }
        self.init(url: object.url, size: object.size, identity: object.identity, lastModified: object.lastModified, access: access)
    }
}
