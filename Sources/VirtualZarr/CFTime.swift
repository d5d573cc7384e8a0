/// CF time coordinates: `<unit> since <reference instant>` in one of CF's calendars. Files of an
/// archive often count from their own start (`hours since 2030-01-02`), so their values join
/// only after each is decoded with its own units and encoded again in the first file's.
public struct CFTimeUnits: Equatable, Sendable, CustomStringConvertible {
    public enum Unit: String, Sendable, CaseIterable {
        case microseconds, milliseconds, seconds, minutes, hours, days, weeks

        /// Length in microseconds.
        var microseconds: Int64 {
            switch self {
            case .microseconds: 1
            case .milliseconds: 1_000
            case .seconds: 1_000_000
            case .minutes: 60_000_000
            case .hours: 3_600_000_000
            case .days: 86_400_000_000
            case .weeks: 604_800_000_000
            }
        }

        static func parse(_ word: String) -> Unit? {
            switch word.lowercased() {
            case "microseconds", "microsecond", "us", "usec", "usecs": .microseconds
            case "milliseconds", "millisecond", "ms", "msec", "msecs": .milliseconds
            case "seconds", "second", "secs", "sec", "s": .seconds
            case "minutes", "minute", "mins", "min": .minutes
            case "hours", "hour", "hrs", "hr", "h": .hours
            case "days", "day", "d": .days
            case "weeks", "week": .weeks
            default: nil
            }
        }
    }

    public var unit: Unit
    public var calendar: CFCalendar
    /// The reference instant in microseconds from the calendar's own epoch.
    public var reference: Int64
    /// The units as written, for messages.
    public var text: String

    public var description: String { "\(text) (\(calendar.rawValue) calendar)" }

    /// Whether `value` (and the reference it counts from) is on or after 1582-10-15, where the
    /// standard and proleptic Gregorian calendars agree (`CFCalendar.agreesFromTheReform`).
    public func isFromTheReform(_ value: Double) -> Bool {
        reference >= CFCalendar.gregorianReform && CFTimeConversion.instant(value, units: self) >= Double(CFCalendar.gregorianReform)
    }

    /// Parses `units` (and the `calendar` attribute, standard when absent); nil when they are
    /// not CF time units this type can convert exactly (months and years have no fixed length).
    public init?(units: String, calendar calendarName: String?) {
        guard let calendar = CFCalendar(name: calendarName) else { return nil }
        let words = units.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard words.count >= 3, words[1].lowercased() == "since", let unit = Unit.parse(words[0]) else { return nil }
        guard let reference = CFTimeUnits.instant(Array(words[2...]), calendar: calendar) else { return nil }
        self.unit = unit
        self.calendar = calendar
        self.reference = reference
        self.text = units
    }

    /// The reference instant of `2030-01-02`, `2030-1-2 00:30:00`, `2030-01-02T00:30:00Z`,
    /// `2030-01-02 00:30:00.5 +05:30` or `... UTC`, in microseconds.
    static func instant(_ words: [String], calendar: CFCalendar) -> Int64? {
        var words = words
        // `2030-01-02T00:30:00` is one word; split it like `2030-01-02 00:30:00`.
        if let t = words[0].firstIndex(where: { $0 == "T" || $0 == "t" }) {
            let date = String(words[0][..<t]), time = String(words[0][words[0].index(after: t)...])
            words.replaceSubrange(0...0, with: time.isEmpty ? [date] : [date, time])
        }
        let dateParts = words[0].split(separator: "-", omittingEmptySubsequences: false)
        // A leading minus is a negative year.
        var parts = dateParts.map(String.init)
        var negative = false
        if parts.first == "" { negative = true; parts.removeFirst() }
        guard parts.count == 3 || parts.count == 1, var year = Int64(parts[0]) else { return nil }
        if negative { year = -year }
        let month = parts.count == 3 ? Int64(parts[1]) : 1
        let day = parts.count == 3 ? Int64(parts[2]) : 1
        guard let month, let day, (1...12).contains(month), day >= 1, day <= calendar.daysIn(year: year, month: Int(month)) else { return nil }
        guard let days = calendar.dayNumber(year: year, month: Int(month), day: Int(day)) else { return nil }
        var micros: Int64 = 0
        var zoneMinutes: Int64 = 0
        var rest = Array(words.dropFirst())
        if var time = rest.first, time.contains(":") {
            rest.removeFirst()
            // A zone glued to the time: `00:30:00Z`, `00:30:00+05:30`.
            if time.hasSuffix("Z") || time.hasSuffix("z") { time.removeLast() }
            if let sign = time.lastIndex(where: { $0 == "+" || $0 == "-" }) {
                guard let zone = zoneOffset(String(time[sign...])) else { return nil }
                zoneMinutes = zone
                time = String(time[..<sign])
            }
            let fields = time.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (2...3).contains(fields.count), let hour = Int64(fields[0]), let minute = Int64(fields[1]),
                (0...24).contains(hour), (0...59).contains(minute)
            else { return nil }
            var secondMicros: Int64 = 0
            if fields.count == 3 {
                guard let seconds = parseSeconds(fields[2]) else { return nil }
                secondMicros = seconds
            }
            micros = hour * 3_600_000_000 + minute * 60_000_000 + secondMicros
        }
        if let zone = rest.first {
            rest.removeFirst()
            if zone.uppercased() != "UTC" && zone.uppercased() != "GMT" && zone.uppercased() != "Z" {
                guard let offset = zoneOffset(zone) else { return nil }
                zoneMinutes = offset
            }
        }
        guard rest.isEmpty else { return nil }
        let (dayMicros, overflow) = days.multipliedReportingOverflow(by: 86_400_000_000)
        guard !overflow else { return nil }
        // Local time minus the zone's offset is UTC.
        return dayMicros + micros - zoneMinutes * 60_000_000
    }

    /// `+05:30`, `-0800`, `+5` as minutes east of UTC.
    static func zoneOffset(_ text: String) -> Int64? {
        guard let sign = text.first, sign == "+" || sign == "-" else { return nil }
        let body = text.dropFirst()
        var hours: Int64?, minutes: Int64 = 0
        if let colon = body.firstIndex(of: ":") {
            hours = Int64(body[..<colon])
            guard let m = Int64(body[body.index(after: colon)...]) else { return nil }
            minutes = m
        } else if body.count == 4 {
            hours = Int64(body.prefix(2))
            guard let m = Int64(body.suffix(2)) else { return nil }
            minutes = m
        } else {
            hours = Int64(body)
        }
        guard let hours, (0...14).contains(hours), (0...59).contains(minutes) else { return nil }
        return (sign == "-" ? -1 : 1) * (hours * 60 + minutes)
    }

    /// `05`, `05.25` as microseconds (beyond microseconds the digits are dropped).
    static func parseSeconds(_ text: String) -> Int64? {
        let pieces = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(pieces.count), let whole = Int64(pieces[0]), (0...60).contains(whole) else { return nil }
        var fraction: Int64 = 0
        if pieces.count == 2 {
            let digits = String(pieces[1].prefix(6)).padding(toLength: 6, withPad: "0", startingAt: 0)
            guard let value = Int64(digits), pieces[1].allSatisfy(\.isNumber) else { return nil }
            fraction = value
        }
        return whole * 1_000_000 + fraction
    }
}

/// CF's calendars, with their aliases folded (`gregorian` is `standard`, `365_day` is `noleap`).
public enum CFCalendar: String, Sendable, Equatable {
    case standard, proleptic_gregorian, julian, noleap, all_leap
    case day360 = "360_day"

    public init?(name: String?) {
        switch (name ?? "standard").lowercased() {
        case "standard", "gregorian", "": self = .standard
        case "proleptic_gregorian": self = .proleptic_gregorian
        case "julian": self = .julian
        case "noleap", "365_day": self = .noleap
        case "all_leap", "366_day": self = .all_leap
        case "360_day": self = .day360
        default: return nil
        }
    }

    /// 1582-10-15 in microseconds from the epoch of the standard and proleptic Gregorian
    /// calendars (one epoch: both count Julian days from then on).
    public static let gregorianReform = CFCalendar.gregorianJulianDay(1582, 10, 15) * 86_400_000_000

    /// Whether instants from 1582-10-15 on mean the same in both calendars: the standard
    /// calendar is the proleptic Gregorian one from then on (xarray writes proleptic_gregorian,
    /// most other writers gregorian or standard, so a post-processed day meets the originals).
    public func agreesFromTheReform(with other: CFCalendar) -> Bool {
        [.standard, .proleptic_gregorian].contains(self) && [.standard, .proleptic_gregorian].contains(other)
    }

    static let cumulativeDays: [Int64] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
    static let monthLengths: [Int64] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

    func isLeap(_ year: Int64) -> Bool {
        switch self {
        case .noleap, .day360: return false
        case .all_leap: return true
        case .julian: return year % 4 == 0
        case .proleptic_gregorian: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        case .standard: return year < 1583 ? year % 4 == 0 : year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        }
    }

    func daysIn(year: Int64, month: Int) -> Int64 {
        if self == .day360 { return 30 }
        return CFCalendar.monthLengths[month - 1] + (month == 2 && isLeap(year) ? 1 : 0)
    }

    /// Days from the calendar's own epoch; only differences between two days of one calendar
    /// mean anything. nil inside the ten days the standard calendar skips in October 1582, or
    /// for years beyond what microseconds in 64 bits hold.
    func dayNumber(year: Int64, month: Int, day: Int) -> Int64? {
        guard abs(year) < 200_000 else { return nil }
        let m = Int64(month), d = Int64(day)
        switch self {
        case .noleap: return year * 365 + CFCalendar.cumulativeDays[month - 1] + d - 1
        case .all_leap: return year * 366 + CFCalendar.cumulativeDays[month - 1] + (month > 2 ? 1 : 0) + d - 1
        case .day360: return year * 360 + (m - 1) * 30 + d - 1
        case .proleptic_gregorian: return CFCalendar.gregorianJulianDay(year, m, d)
        case .julian: return CFCalendar.julianJulianDay(year, m, d)
        case .standard:
            // Julian before 1582-10-15 (the day after Julian 1582-10-04), Gregorian from then.
            if (year, m, d) >= (1582, 10, 15) { return CFCalendar.gregorianJulianDay(year, m, d) }
            if (year, m, d) > (1582, 10, 4) { return nil }
            return CFCalendar.julianJulianDay(year, m, d)
        }
    }

    /// The Julian day number of a proleptic Gregorian date (floor division, so any year works).
    static func gregorianJulianDay(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let a = floorDiv(14 - month, 12)
        let y = year + 4800 - a
        let m = month + 12 * a - 3
        return day + floorDiv(153 * m + 2, 5) + 365 * y + floorDiv(y, 4) - floorDiv(y, 100) + floorDiv(y, 400) - 32045
    }

    /// The Julian day number of a date in the Julian calendar.
    static func julianJulianDay(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let a = floorDiv(14 - month, 12)
        let y = year + 4800 - a
        let m = month + 12 * a - 3
        return day + floorDiv(153 * m + 2, 5) + 365 * y + floorDiv(y, 4) - 32083
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }
}

/// Turns values counted in one file's time units into another's.
public struct CFTimeConversion: Sendable {
    public let from: CFTimeUnits
    public let to: CFTimeUnits

    public init(from: CFTimeUnits, to: CFTimeUnits) {
        self.from = from
        self.to = to
    }

    /// Whether integer values stay integers: both the unit and the shift between the reference
    /// instants are whole multiples of the target unit.
    public var isExactForIntegers: Bool {
        let target = to.unit.microseconds
        return from.unit.microseconds % target == 0 && (from.reference - to.reference) % target == 0
    }

    /// An integer value in the target units, or nil when it is not whole or overflows.
    public func convert(_ value: Int64) -> Int64? {
        guard isExactForIntegers else { return nil }
        let target = to.unit.microseconds
        let (scaled, overflow) = value.multipliedReportingOverflow(by: from.unit.microseconds / target)
        guard !overflow else { return nil }
        let (sum, overflow2) = scaled.addingReportingOverflow((from.reference - to.reference) / target)
        return overflow2 ? nil : sum
    }

    public func convert(_ value: Double) -> Double {
        // Whole microseconds first, so that shifts between references stay exact.
        let shift = Double(from.reference - to.reference)
        return (value * Double(from.unit.microseconds) + shift) / Double(to.unit.microseconds)
    }

    /// The instant of a value in microseconds from the calendar's epoch (for ordering).
    public static func instant(_ value: Double, units: CFTimeUnits) -> Double {
        Double(units.reference) + value * Double(units.unit.microseconds)
    }
}
