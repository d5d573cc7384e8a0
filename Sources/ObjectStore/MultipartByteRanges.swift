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
        // On bytes: Foundation's trimming and case mapping cost more than the rest of a response.
        let fields = Array(contentType.utf8).split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false).map(trimmed)
        guard let type = fields.first, asciiCaseInsensitiveEqual(type, "multipart/byteranges") else { return nil }
        for field in fields.dropFirst() {
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")),
                asciiCaseInsensitiveEqual(trimmed(field[field.startIndex..<equals]), "boundary")
            else { continue }
            var value = trimmed(field[(equals + 1)...])
            if value.count >= 2, value.first == UInt8(ascii: "\""), value.last == UInt8(ascii: "\"") { value = value.dropFirst().dropLast() }
            return value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        }
        return nil
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") { slice = slice.dropFirst() }
        while let last = slice.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") { slice = slice.dropLast() }
        return slice
    }

    public static func parse(_ body: [UInt8], boundary: String) throws -> [Part] {
        let delimiter = Array(("--" + boundary).utf8)
        let separator = Array("\r\n".utf8) + delimiter
        let headerEnd = Array("\r\n\r\n".utf8)
        var parts: [Part] = []
        // The preamble before the first delimiter is ignored (RFC 2046).
        guard var position = find(delimiter, in: body, from: 0) else { throw ParseError(detail: "no boundary \(boundary)") }
        position += delimiter.count
        while true {
            if body.count - position >= 2, body[position] == UInt8(ascii: "-"), body[position + 1] == UInt8(ascii: "-") {
                return parts
            }
            guard let headersEnd = find(headerEnd, in: body, from: position) else {
                throw ParseError(detail: "part \(parts.count + 1) has no end of headers")
            }
            guard let range = contentRange(inHeaders: body[position..<headersEnd]), range.last >= range.first,
                range.last - range.first < UInt64(body.count)
            else {
                throw ParseError(detail: "part \(parts.count + 1) has no valid Content-Range")
            }
            let dataStart = headersEnd + headerEnd.count
            let length = Int(range.last - range.first + 1)
            guard body.count - dataStart >= length else {
                throw ParseError(detail: "part \(parts.count + 1) is cut short (\(body.count - dataStart) of \(length) bytes)")
            }
            parts.append(Part(first: range.first, bytes: body[dataStart..<(dataStart + length)]))
            position = dataStart + length
            // Each part's data is followed by CRLF and the next delimiter.
            guard body.count - position >= separator.count, body[position..<(position + separator.count)].elementsEqual(separator) else {
                throw ParseError(detail: "part \(parts.count) is not followed by the boundary")
            }
            position += separator.count
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, start >= 0, haystack.count - start >= needle.count else { return nil }
        return haystack.withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { pin in
                var index = start
                let last = hay.count - pin.count
                while index <= last {
                    if hay[index] == pin[0], memcmp(hay.baseAddress! + index, pin.baseAddress!, pin.count) == 0 { return index }
                    index += 1
                }
                return nil
            }
        }
    }

    /// `Content-Range: bytes a-b/total` among a part's header lines, read on bytes.
    static func contentRange(inHeaders headers: ArraySlice<UInt8>) -> (first: UInt64, last: UInt64)? {
        let name = Array("content-range:".utf8)
        var lineStart = headers.startIndex
        while lineStart < headers.endIndex {
            var lineEnd = lineStart
            while lineEnd < headers.endIndex, headers[lineEnd] != 0x0A, headers[lineEnd] != 0x0D { lineEnd += 1 }
            if lineEnd - lineStart > name.count,
                zip(headers[lineStart..<(lineStart + name.count)], name).allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0) == $1 })
            {
                return byteRange(headers[(lineStart + name.count)..<lineEnd]).map { ($0.first, $0.last) }
            }
            lineStart = lineEnd + 1
        }
        return nil
    }

    /// A Content-Range value, `bytes a-b/total` (`total` may be `*`), on bytes: the one parser
    /// of this grammar, for response headers and part headers alike.
    static func byteRange(_ value: ArraySlice<UInt8>) -> (first: UInt64, last: UInt64, total: UInt64?)? {
        var index = value.startIndex
        func skipSpaces() { while index < value.endIndex, value[index] == 0x20 || value[index] == 0x09 { index += 1 } }
        func number() -> UInt64? {
            var result: UInt64 = 0
            let start = index
            while index < value.endIndex, value[index] >= 0x30, value[index] <= 0x39, index - start < 19 {
                result = result * 10 + UInt64(value[index] - 0x30)
                index += 1
            }
            return index > start ? result : nil
        }
        skipSpaces()
        let unit = Array("bytes".utf8)
        guard value.endIndex - index > unit.count, value[index..<(index + unit.count)].elementsEqual(unit) else { return nil }
        index += unit.count
        skipSpaces()
        guard let first = number(), index < value.endIndex, value[index] == UInt8(ascii: "-") else { return nil }
        index += 1
        guard let last = number() else { return nil }
        var total: UInt64?
        if index < value.endIndex, value[index] == UInt8(ascii: "/") {
            index += 1
            total = number()
        }
        return (first, last, total)
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
