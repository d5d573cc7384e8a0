import Foundation

/// Where the fixture matrix of `tools/make-fixtures.py` is, for every test target that reads it.
public enum FixtureLocation {
    /// `$ZARRMOUNT_FIXTURES` (tools/test sets it), else `.cache/fixtures` of this checkout when it
    /// exists; nil when neither does (the caller skips, or fails under CI).
    public static func directory() -> URL? {
        if let path = ProcessInfo.processInfo.environment["ZARRMOUNT_FIXTURES"] { return URL(fileURLWithPath: path) }
        let fallback = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.cache/fixtures").standardized
        return FileManager.default.fileExists(atPath: fallback.path) ? fallback : nil
    }

    /// Under CI a missing prerequisite is a failure, never a skip.
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// What a test says when the fixtures are missing.
    public static let missing =
        "no fixtures: ZARRMOUNT_FIXTURES is not set and .cache/fixtures does not exist; run tools/test (or tools/make-fixtures.py .cache/fixtures)"
}
