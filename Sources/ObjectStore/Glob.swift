/// Shell-style patterns over object keys: `*` and `?` within one path segment, `[...]`
/// character classes (`[!...]` negated, ranges), and `**` for any number of segments.
public struct GlobPattern: Sendable, Equatable {
    public let pattern: String
    private let segments: [String]
    /// Local paths: as in the shell and Python's `glob` (what `xr.open_mfdataset("*.nc")` opens),
    /// a wildcard does not match a name that starts with `.` (`._day1.nc` beside `day1.nc`, a
    /// `.snapshot` directory under `**`) unless the pattern's segment starts with `.` too.
    public let hidesDotNames: Bool

    public init(_ pattern: String, hidesDotNames: Bool = false) {
        self.pattern = pattern
        self.hidesDotNames = hidesDotNames
        segments = pattern.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    }

    public static func hasWildcards(_ text: String) -> Bool {
        text.contains { "*?[".contains($0) }
    }

    /// Why a source that names an object and, as a pattern, others is refused, and how to say
    /// which is meant.
    static func literalOrPatternMessage(pattern: String, others: [String]) -> String {
        let escaped = pattern.split(separator: "/", omittingEmptySubsequences: false).last.map {
            $0.map { "*?[".contains($0) ? "[\($0)]" : String($0) }.joined()
        }
        let shown = others.prefix(3).joined(separator: ", ") + (others.count > 3 ? " and \(others.count - 3) more" : "")
        return
            "\(pattern) names a file, but as a pattern it also matches \(shown). For that file alone, write its wildcard characters in brackets (\(escaped ?? "")); for the files the pattern matches, name them without it"
    }

    /// The longest leading part without wildcards: where listing starts.
    public var literalPrefix: String {
        var prefix: [String] = []
        for segment in segments {
            if Self.hasWildcards(segment) { break }
            prefix.append(segment)
        }
        if prefix.count == segments.count { return pattern }
        return prefix.joined(separator: "/") + (prefix.isEmpty ? "" : "/")
    }

    public func matches(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        return match(segments[...], parts[...])
    }

    private func match(_ pattern: ArraySlice<String>, _ parts: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return parts.isEmpty }
        if head == "**" {
            let rest = pattern.dropFirst()
            var index = parts.startIndex
            while true {
                if match(rest, parts[index...]) { return true }
                if index == parts.endIndex || hidesDotNames && parts[index].hasPrefix(".") { return false }
                index += 1
            }
        }
        guard let part = parts.first, Self.matchSegment(Array(head.unicodeScalars)[...], Array(part.unicodeScalars)[...]) else { return false }
        if hidesDotNames, part.hasPrefix("."), !head.hasPrefix("."), Self.hasWildcards(head) { return false }
        return match(pattern.dropFirst(), parts.dropFirst())
    }

    static func matchSegment(_ pattern: ArraySlice<Unicode.Scalar>, _ text: ArraySlice<Unicode.Scalar>) -> Bool {
        guard let p = pattern.first else { return text.isEmpty }
        switch p {
        case "*":
            var index = text.startIndex
            while true {
                if matchSegment(pattern.dropFirst(), text[index...]) { return true }
                if index == text.endIndex { return false }
                index += 1
            }
        case "?":
            guard !text.isEmpty else { return false }
            return matchSegment(pattern.dropFirst(), text.dropFirst())
        case "[":
            guard let c = text.first, let close = pattern.dropFirst(2).firstIndex(of: "]") else {
                return text.first == "[" && matchSegment(pattern.dropFirst(), text.dropFirst())
            }
            var set = pattern[(pattern.startIndex + 1)..<close]
            var negate = false
            if set.first == "!" || set.first == "^" { negate = true; set = set.dropFirst() }
            var found = false
            var i = set.startIndex
            while i < set.endIndex {
                if i + 2 < set.endIndex, set[i + 1] == "-" {
                    if set[i].value <= c.value && c.value <= set[i + 2].value { found = true }
                    i += 3
                } else {
                    if set[i] == c { found = true }
                    i += 1
                }
            }
            guard found != negate else { return false }
            return matchSegment(pattern[(close + 1)...], text.dropFirst())
        default:
            guard text.first == p else { return false }
            return matchSegment(pattern.dropFirst(), text.dropFirst())
        }
    }
}
