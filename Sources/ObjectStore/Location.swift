import ByteSource

extension Location {
    /// The location `text` names, or an error that names the text and says what is accepted.
    public init(parsing text: String) throws {
        do { try self.init(text) } catch { throw ObjectStoreError(.invalidLocation(error.reason), url: text) }
    }
}

/// RFC 3986 percent-encoding as AWS SigV4 wants it: unreserved characters kept, `/` kept
/// only when `keepSlash`.
func uriEncode(_ text: String, keepSlash: Bool) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        case UInt8(ascii: "/") where keepSlash:
            out.append("/")
        default:
            out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return out
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
