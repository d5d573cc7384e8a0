import Foundation
import Icechunk
import ObjectStore
import VirtualZarr
import Yams

/// A mount configuration (`mount-configs/*.yaml`): what to scan and how to combine it.
public struct MountConfig: Sendable {
    public var sources: [String]
    /// A kerchunk reference file (path or URL) to serve instead of scanning `sources`.
    public var references: String?
    /// An Icechunk repository's snapshot to serve instead of sources (`mount --icechunk`).
    public var icechunk: IcechunkSource?
    /// `references` must be a manifest file (`mount --manifest`), not kerchunk JSON.
    public var referencesAreManifest = false
    /// Prefixes beyond the reference file's own origin or directory that its objects may be
    /// under (`allow_sources`, `--allow-source`).
    public var allowSources: [String] = []
    public var concatDim: String?
    public var order: FileOrder = .key
    public var attrs: AttributePolicy = .first
    public var layout: FileLayout = .combined
    public var zarrFormat: ZarrFormat = .v2
    public var onError: ErrorPolicy = .fail
    public var stack: StackOptions?
    /// Variables without the concat dimension: the first file's, or compared (`compat`).
    public var compat: CompatPolicy?
    /// Only these variables (`variables`), or all but these (`drop_variables`).
    public var variables: [String]?
    public var dropVariables: [String] = []
    /// Mounts with `--decoded --unpack`: variables packed differently per file are unpacked.
    public var unpack = false
    /// Mounts with `--decoded`: variables chunked differently per file are served on one grid,
    /// and `chunks` (`--chunks VAR=...`) re-chunks the named ones.
    public var regrid = false
    public var chunks: [String: [UInt64]] = [:]
    public var concurrency: Int?
    /// Connections per server (`connections`); nil: the engine's default.
    public var connections: Int?
    /// S3: a custom endpoint (path-style), the region, unsigned requests, requester pays.
    public var endpointURL: String?
    public var region: String?
    /// PEM certificates HTTPS servers are verified against (`ca_bundle`).
    public var caBundle: String?
    public var anonymous = false
    public var requesterPays = false
    /// The manifest cache's directory (`cache_dir`), or none at all (`no_cache: true`).
    public var cacheDirectory: String?
    /// Mounts: check stored chunks before serving them (`verify_chunks`), and how long a read
    /// may wait, in seconds (`timeout`); the flags win.
    public var verifyChunks = false
    public var readTimeout: Int?
    public var noCache = false

    public init(sources: [String]) {
        self.sources = sources
    }

    /// `VAR=N,N,...` (`--chunks`): the variable and one positive extent per dimension, or nil.
    public static func chunkSpec(_ text: String) -> (variable: String, extents: [UInt64])? {
        let parts = text.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, !parts[0].isEmpty else { return nil }
        let extents = parts[1].split(separator: ",", omittingEmptySubsequences: false).map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !extents.isEmpty, extents.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return (String(parts[0]), extents.map { $0! })
    }

    /// The certificates HTTPS servers are verified against: `ca_bundle` (or `--ca-bundle`),
    /// else `CURL_CA_BUNDLE`, else `SSL_CERT_FILE`, else nil (the system's).
    public func certificateBundle(environment: [String: String]) -> String? {
        caBundle ?? environment["CURL_CA_BUNDLE"] ?? environment["SSL_CERT_FILE"]
    }

    public static let keys = [
        "sources", "concat_dim", "order", "attrs", "zarr_format", "on_error", "stack", "concurrency", "connections",
        "endpoint_url", "region", "anonymous", "requester_pays", "cache_dir", "no_cache", "url_template", "references", "layout", "allow_sources", "ca_bundle",
        "verify_chunks", "timeout", "compat", "variables", "drop_variables",
    ]

    public static func load(path: String) throws -> MountConfig {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigError(file: path, line: nil, key: nil, message: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(text, file: path)
    }

    /// Parses YAML text; relative source paths are taken relative to the config file.
    public static func parse(_ text: String, file: String) throws -> MountConfig {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch let error as YamlError {
            throw ConfigError(file: file, line: nil, key: nil, message: "not valid YAML: \(error)")
        }
        guard let root = node, let mapping = root.mapping else {
            throw ConfigError(file: file, line: node?.mark?.line, key: nil, message: "expected a mapping of keys (sources, concat_dim, ...)")
        }
        func fail(_ key: String, _ value: Node, _ message: String) -> ConfigError {
            ConfigError(file: file, line: value.mark?.line, key: key, message: message)
        }
        func string(_ key: String, _ value: Node) throws -> String {
            guard let text = value.scalar?.string else { throw fail(key, value, "expected a string") }
            return text
        }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ value: Node, _ type: T.Type) throws -> T where T.RawValue == String {
            let text = try string(key, value)
            guard let parsed = T(rawValue: text) else {
                throw fail(key, value, "\(text) is not one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return parsed
        }
        let base = (file as NSString).deletingLastPathComponent
        /// A path or URL; relative paths are relative to the config file.
        func location(_ key: String, _ value: Node) throws -> String {
            let text = try string(key, value)
            return text.hasPrefix("/") || text.contains("://") || base.isEmpty ? text : base + "/" + text
        }
        /// One location or a list of them.
        func locations(_ key: String, _ value: Node) throws -> [String] {
            try (value.sequence.map(Array.init) ?? [value]).map { try location(key, $0) }
        }
        /// One name or a list of them.
        func names(_ key: String, _ value: Node) throws -> [String] {
            try (value.sequence.map(Array.init) ?? [value]).map { try string(key, $0) }
        }
        var config = MountConfig(sources: [])
        var sawSources = false
        // Every key's problem is reported in one run, not one per attempt.
        var problems: [ConfigError] = []
        for (keyNode, value) in mapping {
            do {
                guard let key = keyNode.scalar?.string else { throw fail("?", keyNode, "keys must be strings") }
                switch key {
                case "sources":
                    sawSources = true
                    let items = try locations(key, value)
                    config.sources += items
                    if items.isEmpty { throw fail(key, value, "needs at least one path, glob or URL") }
                case "references":
                    config.references = try location(key, value)
                case "allow_sources":
                    config.allowSources += try locations(key, value)
                case "concat_dim": config.concatDim = try string(key, value)
                case "order": config.order = try choice(key, value, FileOrder.self)
                case "attrs": config.attrs = try choice(key, value, AttributePolicy.self)
                case "layout": config.layout = try choice(key, value, FileLayout.self)
                case "on_error": config.onError = try choice(key, value, ErrorPolicy.self)
                case "compat": config.compat = try choice(key, value, CompatPolicy.self)
                case "variables": config.variables = try names(key, value)
                case "drop_variables": config.dropVariables = try names(key, value)
                case "zarr_format":
                    guard let number = value.scalar?.string, let format = Int(number).flatMap(ZarrFormat.init(rawValue:)) else {
                        throw fail(key, value, "expected 2 or 3")
                    }
                    config.zarrFormat = format
                case "concurrency":
                    guard let text = value.scalar?.string, let number = Int(text), number >= 1 else {
                        throw fail(key, value, "expected a whole number of at least 1")
                    }
                    config.concurrency = number
                case "connections":
                    guard let text = value.scalar?.string, let number = Int(text), number >= 1 else {
                        throw fail(key, value, "expected a whole number of at least 1")
                    }
                    config.connections = number
                case "endpoint_url": config.endpointURL = try string(key, value)
                case "region": config.region = try string(key, value)
                case "ca_bundle": config.caBundle = try location(key, value)
                case "cache_dir": config.cacheDirectory = try string(key, value)
                case "url_template":
                    guard let spec = value.mapping, let template = spec["template"], let range = spec["range"] else {
                        throw fail(key, value, "expected a mapping with template and range (A..B)")
                    }
                    do {
                        config.sources += try URLTemplate(
                            template: try string("url_template.template", template),
                            range: URLTemplate.parseRange(try string("url_template.range", range))
                        ).expand()
                    } catch let error as ObjectStoreError {
                        throw fail(key, value, error.description)
                    }
                    sawSources = true
                case "timeout":
                    guard let text = value.scalar?.string, let seconds = Int(text), seconds >= 0 else {
                        throw fail(key, value, "expected a whole number of seconds (0: no bound)")
                    }
                    config.readTimeout = seconds
                case "anonymous", "requester_pays", "no_cache", "verify_chunks":
                    guard let text = value.scalar?.string, let flag = Bool(text.lowercased()) ?? (text == "yes" ? true : text == "no" ? false : nil) else {
                        throw fail(key, value, "expected true or false")
                    }
                    switch key {
                    case "anonymous": config.anonymous = flag
                    case "requester_pays": config.requesterPays = flag
                    case "verify_chunks": config.verifyChunks = flag
                    default: config.noCache = flag
                    }
                case "stack":
                    guard let stack = value.mapping, let dimension = stack["dimension"], let regex = stack["regex"] else {
                        throw fail(key, value, "expected a mapping with dimension and regex")
                    }
                    config.stack = StackOptions(dimension: try string("stack.dimension", dimension), pattern: try string("stack.regex", regex))
                default:
                    throw fail(key, keyNode, "unknown key; the keys are \(keys.joined(separator: ", "))")
                }
            } catch let error as ConfigError {
                problems.append(error)
            }
        }
        if var first = problems.first {
            first.more = Array(problems.dropFirst())
            throw first
        }
        if config.references != nil {
            if sawSources {
                throw ConfigError(
                    file: file, line: mapping["references"]?.mark?.line, key: "references",
                    message: "give either sources (to scan) or references (an existing kerchunk file), not both")
            }
        } else if !sawSources {
            throw ConfigError(
                file: file, line: nil, key: "sources", message: "missing; list the files, globs or URLs to mount (or name a kerchunk file with references)")
        }
        return config
    }
}

extension MountConfig {
    /// The sources a `--urls` file lists: one per line, blank lines and `#` comments skipped.
    /// Lines may end in CRLF (a list saved on Windows, whose `\r\n` Swift reads as one
    /// character) and the file may start with a byte order mark; spaces around a line are not
    /// part of it.
    public static func sourceList(_ text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).map { line in
            line.trimmingCharacters(in: CharacterSet.whitespaces.union(CharacterSet(charactersIn: "\u{FEFF}")))
        }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}

public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String
    /// One-based line, as the YAML parser reports it.
    public var line: Int?
    public var key: String?
    public var message: String
    /// The other problems found in the same file, each on a line of its own.
    public var more: [ConfigError] = []

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        let this = key.map { "\(location): \($0): \(message)" } ?? "\(location): \(message)"
        return ([this] + more.map(\.description)).joined(separator: "\n")
    }
}
