/// Timestamps as servers send them: HTTP dates (`Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT`)
/// and S3 listings' ISO 8601 (`2026-11-27T02:00:00.000Z`), as seconds since 1970 (UTC).
public enum HTTPDate {
    public static func seconds(_ text: String) -> Int64? {
        text.hasSuffix(" GMT") ? rfc1123(text) : iso8601(text)
    }

    static func rfc1123(_ text: String) -> Int64? {
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT", let day = Int(parts[1]), let year = Int(parts[3]),
            let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].firstIndex(of: String(parts[2])),
            let time = clock(parts[4])
        else { return nil }
        return civil(year: year, month: month + 1, day: day, seconds: time)
    }

    static func iso8601(_ text: String) -> Int64? {
        // "2026-11-27T02:00:00.000Z" (fraction optional)
        let halves = text.split(separator: "T")
        guard halves.count == 2, halves[1].hasSuffix("Z") else { return nil }
        let date = halves[0].split(separator: "-").compactMap { Int($0) }
        let timeText = halves[1].dropLast().split(separator: ".").first ?? ""
        guard date.count == 3, let time = clock(timeText) else { return nil }
        return civil(year: date[0], month: date[1], day: date[2], seconds: time)
    }

    private static func clock(_ text: Substring) -> Int? {
        let fields = text.split(separator: ":").compactMap { Int($0) }
        guard fields.count == 3, (0..<24).contains(fields[0]), (0..<60).contains(fields[1]), (0...60).contains(fields[2]) else { return nil }
        return fields[0] * 3600 + fields[1] * 60 + fields[2]
    }

    /// Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    private static func civil(year: Int, month: Int, day: Int, seconds: Int) -> Int64? {
        guard (1...12).contains(month), (1...31).contains(day) else { return nil }
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return Int64(days) * 86_400 + Int64(seconds)
    }
}
