/// Why an object could not be listed or read, with what to do about it.
public struct ObjectStoreError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        case notFound
        case forbidden
        /// The object changed since it was scanned (If-Match failed).
        case changed
        case http(Int)
        case transport(String)
        case truncated
        /// The server sent more than was asked for (e.g. a whole object for a ranged request).
        case tooLarge
        case invalidResponse(String)
        case invalidLocation(String)
        /// The server redirected to another origin, which is not followed.
        case redirected(to: String)
    }

    public var kind: Kind
    public var url: String
    public var status: Int?
    public var s3Code: String?
    public var attempts: Int
    /// What probably caused it, when the store knows more than the response says.
    public var hint: String?

    public init(_ kind: Kind, url: String, status: Int? = nil, s3Code: String? = nil, attempts: Int = 1) {
        self.kind = kind
        self.url = url
        self.status = status
        self.s3Code = s3Code
        self.attempts = attempts
    }

    public var description: String {
        var text: String
        switch kind {
        case .notFound: text = url.hasPrefix("/") ? "\(url): no such file" : "\(url): not found (HTTP 404): check the bucket, key or URL"
        case .forbidden:
            text =
                "\(url): access denied (HTTP 403): check credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE), or use --anonymous for a public bucket"
        case .changed: text = "\(url): the object changed since it was scanned (ETag no longer matches); unmount and scan again"
        case .http(let status): text = "\(url): HTTP \(status)"
        case .transport(let message): text = "\(url): \(message)"
        case .truncated: text = "\(url): the response ended before the promised length"
        case .tooLarge: text = "\(url): the server sent more bytes than were asked for"
        case .invalidResponse(let detail): text = "\(url): unexpected response: \(detail)"
        case .invalidLocation(let detail): text = "\(url): \(detail)"
        case .redirected(let target):
            text =
                "\(url): redirected to \(target), another origin; zarrmount follows redirects within one server only: use the final URL (or the right S3 region or endpoint) as the source"
        }
        if let s3Code { text += " [S3 \(s3Code)]" }
        if attempts > 1 { text += " after \(attempts) attempts" }
        if let hint { text += "; \(hint)" }
        return text
    }
}
