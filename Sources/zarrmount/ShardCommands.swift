import ArgumentParser
import Foundation
import Logging
import ObjectStore
import Scanner
import VirtualZarr

/// `zarrmount scan --shard I/N --manifest PART.zmf`: scans one shard of the listing and writes
/// its files uncombined, for `zarrmount merge`.
func scanShard(_ config: MountConfig, shard: Shard, to manifest: String, logger: Logger) async throws {
    var (options, engine) = try scanOptionsWithStore(config, logger: logger)
    defer { engine?.shutdown() }
    options.shard = shard
    options.provesAhead = false
    if !config.noCache { options.cache = ManifestCache(directory: config.cacheDirectory ?? ManifestCache.defaultDirectory()) }
    let scanned = try await scanPartsReporting(config, options: options, logger: logger)
    let range = shard.range(of: scanned.listedFiles)
    printError(
        "scanned shard \(shard.index)/\(shard.count): files \(range.lowerBound)..<\(range.upperBound) of \(scanned.listedFiles) in key order, \(scanned.parts.count) scanned, \(scanned.skipped.count) skipped (\(scanned.cacheHits) from the manifest cache)"
    )
    for (file, reason) in scanned.skipped { printError("skipped: " + Scanner.skippedLine(file: file, reason: reason)) }
    let contents = ManifestFile.ShardParts(shard: shard, listedFiles: scanned.listedFiles, parts: scanned.parts, skipped: scanned.skipped)
    try writeManifest(.shard(contents), to: manifest)
}

/// Lists and scans the sources into their files' datasets, with the progress line; a scan error
/// is printed and exits 1.
func scanPartsReporting(_ config: MountConfig, options: ScanOptions, logger: Logger) async throws -> ScannedParts {
    let reporter = ProgressReporter()
    do {
        let scanned = try await Scanner.scanParts(sources: config.sources, options: options, logger: logger) { reporter.update($0) }
        reporter.finish()
        return scanned
    } catch let error as ScanError {
        reporter.finish()
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

struct Merge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Combine the shards of a scan (`scan --shard I/N --manifest PART.zmf`) into one manifest or reference file.",
        discussion: """
            Reads every part (paths or URLs), checks that they are the N shards of one listing, \
            and combines their files with the same rules and errors as a single scan: give merge \
            the combine options the single scan would have had (--concat-dim, --compat, --order, \
            --variables, ...). The result is byte for byte the single scan's. Exit status: 0 done, \
            1 failed, 2 done but some files were skipped by the shards (--on-error skip).
            """
    )

    @OptionGroup var source: SourceOptions

    @Option(help: ArgumentHelp("Where to write the combined manifest (.zmf).", valueName: "file"))
    var manifest: String?

    @Option(help: ArgumentHelp("Where to write kerchunk reference JSON of the combined dataset.", valueName: "file"))
    var refs: String?

    func validate() throws {
        if refs == nil && manifest == nil { throw ValidationError("give --manifest ALL.zmf, --refs ALL.json, or both") }
    }

    func run() async throws {
        let config = try source.resolve()
        guard config.references == nil, !config.sources.isEmpty else { throw ValidationError("give the parts: PART.zmf files or URLs") }
        let logger = try source.logging.makeLogger()
        var (options, engine) = try scanOptionsWithStore(config, logger: logger, alwaysStore: true)
        defer { engine?.shutdown() }
        if !config.noCache { options.cache = ManifestCache(directory: config.cacheDirectory ?? ManifestCache.defaultDirectory()) }
        var shards: [ManifestFile.ShardParts] = []
        for location in config.sources {
            do {
                let (contents, _) = try await ReferenceLoader.readManifestContents(location, store: options.store)
                guard case .shard(let shard) = contents else {
                    printError("error: \(location): a combined manifest, not a shard of a scan; merge takes the parts `scan --shard I/N` writes")
                    throw ExitCode(1)
                }
                shards.append(shard)
            } catch let error as ScanError {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
        let scanned: ScannedParts
        switch ShardSet.check(shards, names: config.sources) {
        case .failure(let problem):
            printError("error: \(problem)")
            throw ExitCode(1)
        case .success(let ordered):
            scanned = ordered
        }
        let summary: ScanSummary
        do {
            summary = try await Scanner.combine(scanned, options: options)
        } catch let error as ScanError {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        printError(
            "merged \(shards.count) shards: \(summary.files) files, \(summary.arrayCount) arrays, \(summary.chunkCount) chunks")
        for warning in summary.dataset.warnings { printError("warning: \(warning)") }
        for note in summary.dataset.notes { printError("note: \(note)") }
        for (file, reason) in summary.skipped { printError("skipped: " + Scanner.skippedLine(file: file, reason: reason)) }
        try writeScanOutputs(summary, refs: refs, manifest: manifest)
    }
}

/// `zarrmount scan --update OLD.zmf SOURCES --concat-dim DIM`: the manifest's dataset with the
/// sources' new files appended along DIM. The files it holds are not scanned again: they are
/// listed, and any whose size or identity changed stops the update (scan them all again).
func scanUpdate(
    _ config: MountConfig, existing: String, logger: Logger, then: (ScanSummary) async throws -> Void
) async throws {
    var (options, engine) = try scanOptionsWithStore(config, logger: logger, alwaysStore: true)
    defer { engine?.shutdown() }
    if !config.noCache { options.cache = ManifestCache(directory: config.cacheDirectory ?? ManifestCache.defaultDirectory()) }
    let old: VirtualDataset
    do {
        old = try await ReferenceLoader.readManifest(existing, store: options.store).dataset
    } catch let error as ScanError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
    // The files the manifest holds, as they are now: any change means the appended dataset
    // would mix two versions of the archive.
    guard let store = options.store else { throw ExitCode(1) }
    let changed = await ObjectChanges.check(old.objects, store: store)
    if !changed.isEmpty {
        printError(
            "error: \(existing): \(changed.count) of its \(old.objects.count) objects changed since it was written; scan every file again (without --update):")
        for line in changed.prefix(20) { printError("  \(line)") }
        throw ExitCode(1)
    }
    options.excludedURLs = Set(old.objects.map(\.url))
    var scanned = try await scanPartsReporting(config, options: options, logger: logger)
    let newFiles = scanned.parts.count
    if newFiles == 0 && scanned.skipped.isEmpty {
        printError("no new files: \(existing) holds every source")
    }
    if config.order == .key, let first = scanned.parts.first?.name, let last = old.objects.map(\.url).max(), first < last {
        printError(
            "error: \(first) sorts before \(last), which \(existing) holds: appended files must come after the manifest's in key order; scan every file again (without --update), or use --order coordinate"
        )
        throw ExitCode(1)
    }
    scanned.parts.insert((existing, old), at: 0)
    let summary: ScanSummary
    do {
        summary = try await Scanner.combine(scanned, options: options)
    } catch let error as ScanError {
        printError("error: \(error)")
        throw ExitCode(1)
    }
    printError(
        "updated \(existing): \(old.objects.count) objects kept, \(newFiles) new files scanned (\(scanned.cacheHits) from the manifest cache): \(summary.arrayCount) arrays, \(summary.chunkCount) chunks"
    )
    for warning in summary.dataset.warnings { printError("warning: \(warning)") }
    for (file, reason) in summary.skipped { printError("skipped: " + Scanner.skippedLine(file: file, reason: reason)) }
    try await then(summary)
}
