/// numcodecs' `vlen-utf8` encoding of a chunk of variable-length strings: a 32-bit little-endian
/// count, then each string's 32-bit length and UTF-8 bytes. The mappings write it for the
/// strings they read inline, and a combine joins the files' chunks; this is the one place that
/// knows the layout.
public enum VLenUTF8 {
    public static func encode(_ strings: [String]) -> [UInt8] {
        var encoded = word(strings.count)
        for string in strings {
            let bytes = Array(string.utf8)
            encoded += word(bytes.count) + bytes
        }
        return encoded
    }

    /// The strings of every chunk, in order, as one chunk; nil when a chunk's count is not the
    /// one given for it, or when the total passes what the count can say.
    public static func concatenated(_ chunks: [[UInt8]], counts: [Int]) -> [UInt8]? {
        var items: [UInt8] = []
        for (chunk, expected) in zip(chunks, counts) {
            guard chunk.count >= 4, count(of: chunk) == expected else { return nil }
            items += chunk.dropFirst(4)
        }
        let total = counts.reduce(0, +)
        guard chunks.count == counts.count, total <= Int(UInt32.max) else { return nil }
        return word(total) + items
    }

    static func count(of chunk: [UInt8]) -> Int { (0..<4).reduce(0) { $0 | Int(chunk[$1]) << (8 * $1) } }

    static func word(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
}
