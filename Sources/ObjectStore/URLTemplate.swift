import Foundation

/// URLs generated from a template over a range of dates or integers:
/// `{date}` (YYYY-MM-DD), `{date:%Y%m%d}` (%Y %m %d %j), `{i}` and `{i:03}` (zero-padded).
public struct URLTemplate: Sendable, Equatable {
    public enum Range: Sendable, Equatable {
        /// Inclusive, one step per day.
        case dates(from: String, to: String)
        /// Inclusive, step 1.
        case integers(from: Int, to: Int)
    }

    public var template: String
    public var range: Range

    public init(template: String, range: Range) {
        self.template = template
        self.range = range
    }

    /// Parses `A..B` as dates (`2060-01-01..2060-12-31`) or integers (`0..364`).
    public static func parseRange(_ text: String) throws -> Range {
        let parts = text.components(separatedBy: "..")
        guard parts.count == 2 else { throw ObjectStoreError(.invalidLocation("range must look like A..B"), url: text) }
        if let a = Int(parts[0]), let b = Int(parts[1]) { return .integers(from: a, to: b) }
        return .dates(from: parts[0], to: parts[1])
    }

    public func expand(limit: Int = 1_000_000) throws -> [String] {
        switch range {
        case .integers(let from, let to):
            guard to >= from, to - from < limit else { throw ObjectStoreError(.invalidLocation("empty or too long range \(from)..\(to)"), url: template) }
            return try (from...to).map { try substitute(integer: $0, date: nil) }
        case .dates(let from, let to):
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            guard let start = Self.day(from, calendar), let end = Self.day(to, calendar), end >= start else {
                throw ObjectStoreError(.invalidLocation("dates must be YYYY-MM-DD..YYYY-MM-DD in order"), url: "\(from)..\(to)")
            }
            var urls: [String] = []
            var current = start
            while current <= end {
                urls.append(try substitute(integer: nil, date: current))
                guard urls.count < limit, let next = calendar.date(byAdding: .day, value: 1, to: current) else { break }
                current = next
            }
            return urls
        }
    }

    static func day(_ text: String, _ calendar: Calendar) -> Date? {
        let parts = text.split(separator: "-").compactMap { Int($0) }
        guard parts.count == 3 else { return nil }
        return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2]))
    }

    func substitute(integer: Int?, date: Date?) throws -> String {
        var out = ""
        var rest = template[...]
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw ObjectStoreError(.invalidLocation("unclosed { in the URL template"), url: template)
            }
            let field = rest[rest.index(after: open)..<close]
            let (name, format) = field.firstIndex(of: ":").map { (String(field[..<$0]), String(field[field.index(after: $0)...])) } ?? (String(field), "")
            switch (name, integer, date) {
            case ("i", let value?, _):
                let width = Int(format) ?? 0
                let digits = String(abs(value))
                out += (value < 0 ? "-" : "") + String(repeating: "0", count: max(0, width - digits.count - (value < 0 ? 1 : 0))) + digits
            case ("date", _, let value?):
                out += Self.format(value, format.isEmpty ? "%Y-%m-%d" : format)
            default:
                throw ObjectStoreError(.invalidLocation("{\(field)} does not fit the range (use {date} with dates, {i} with integers)"), url: template)
            }
            rest = rest[rest.index(after: close)...]
        }
        return out + rest
    }

    static func format(_ date: Date, _ pattern: String) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 0
        func pad(_ value: Int, _ width: Int) -> String { String(repeating: "0", count: max(0, width - String(value).count)) + String(value) }
        return pattern.replacingOccurrences(of: "%Y", with: pad(parts.year ?? 0, 4)).replacingOccurrences(of: "%m", with: pad(parts.month ?? 0, 2))
            .replacingOccurrences(of: "%d", with: pad(parts.day ?? 0, 2)).replacingOccurrences(of: "%j", with: pad(dayOfYear, 3))
    }
}
