import Foundation

/// The body of a `206 Partial Content` answer to a request for several ranges
/// (`Content-Type: multipart/byteranges; boundary=…`, RFC 9110 §14.6).
///
/// Each part's length comes from its own `Content-Range`, so the data is never searched for the
/// boundary (a boundary string inside the data cannot confuse the parser), and anything that
/// does not add up is an error rather than a guess.
public enum MultipartByteRanges {
    public struct Part: Sendable, Equatable {
        public var first: UInt64
        public var bytes: ArraySlice<UInt8>
    }

    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public var detail: String
        public var description: String { "malformed multipart/byteranges body: \(detail)" }
    }

    /// The boundary of a `multipart/byteranges` content type, or nil for any other type.
    public static func boundary(contentType: String) -> String? {
        let fields = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard let type = fields.first, type.lowercased() == "multipart/byteranges" else { return nil }
        for field in fields.dropFirst() {
            let pair = field.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty ? nil : value
        }
        return nil
    }

    public static func parse(_ body: [UInt8], boundary: String) throws -> [Part] {
        let delimiter = Array(("--" + boundary).utf8)
        var parts: [Part] = []
        var position = 0

        func find(_ needle: [UInt8], from start: Int) -> Int? {
            guard needle.count <= body.count, start <= body.count - needle.count else { return nil }
            var index = start
            while index <= body.count - needle.count {
                if body[index] == needle[0], body[index..<(index + needle.count)].elementsEqual(needle) { return index }
                index += 1
            }
            return nil
        }

        // The preamble before the first delimiter is ignored (RFC 2046).
        guard let firstDelimiter = find(delimiter, from: 0) else { throw ParseError(detail: "no boundary \(boundary)") }
        position = firstDelimiter + delimiter.count
        while true {
            if body.count - position >= 2, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") {
                return parts
            }
            guard let headerEnd = find(Array("\r\n\r\n".utf8), from: position) else {
                throw ParseError(detail: "part \(parts.count + 1) has no end of headers")
            }
            let headerText = String(decoding: body[position..<headerEnd], as: UTF8.self)
            var range: (first: UInt64, last: UInt64)?
            for line in headerText.split(whereSeparator: \.isNewline) {
                guard let colon = line.firstIndex(of: ":"),
                      line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "content-range" else { continue }
                range = HTTPResponse.parseContentRange(line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
                    .map { ($0.first, $0.last) }
            }
            guard let range, range.last >= range.first, range.last - range.first < UInt64(body.count) else {
                throw ParseError(detail: "part \(parts.count + 1) has no valid Content-Range")
            }
            let dataStart = headerEnd + 4
            let length = Int(range.last - range.first + 1)
            guard body.count - dataStart >= length else {
                throw ParseError(detail: "part \(parts.count + 1) is cut short (\(body.count - dataStart) of \(length) bytes)")
            }
            parts.append(Part(first: range.first, bytes: body[dataStart..<(dataStart + length)]))
            position = dataStart + length
            // Each part's data is followed by CRLF and the next delimiter.
            let expected = Array("\r\n".utf8) + delimiter
            guard body.count - position >= expected.count, body[position..<(position + expected.count)].elementsEqual(expected) else {
                throw ParseError(detail: "part \(parts.count) is not followed by the boundary")
            }
            position += expected.count
        }
    }

    /// The bytes of each requested range, cut from whichever part holds it (servers may merge
    /// or reorder ranges). Nil if any range is missing.
    public static func slices(of parts: [Part], for ranges: [Range<UInt64>]) -> [[UInt8]]? {
        var out: [[UInt8]] = []
        out.reserveCapacity(ranges.count)
        for range in ranges {
            guard let part = parts.first(where: { $0.first <= range.lowerBound && $0.first + UInt64($0.bytes.count) >= range.upperBound }) else {
                return nil
            }
            let start = part.bytes.startIndex + Int(range.lowerBound - part.first)
            out.append(Array(part.bytes[start..<(start + range.count)]))
        }
        return out
    }
}
