import Crypto
import Foundation

/// AWS credentials. Never logged, never part of an error or a reference.
public struct Credentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// From `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, else from the
    /// shared credentials file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`) for
    /// `AWS_PROFILE` (default `default`). `nil` when there are none.
    public static func resolve(environment: [String: String]) throws -> Credentials? {
        if let key = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !key.isEmpty {
            return Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials"
        let profile = environment["AWS_PROFILE"] ?? "default"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            if environment["AWS_PROFILE"] != nil {
                throw ObjectStoreError(.invalidLocation("AWS_PROFILE=\(profile) but \(path) cannot be read"), url: path)
            }
            return nil
        }
        var section = ""
        var values: [String: String] = [:]
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard section == profile, let equals = line.firstIndex(of: "=") else { continue }
            values[line[..<equals].trimmingCharacters(in: .whitespaces)] = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
        }
        guard let key = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] else {
            if environment["AWS_PROFILE"] != nil {
                throw ObjectStoreError(.invalidLocation("profile \(profile) has no aws_access_key_id/aws_secret_access_key"), url: path)
            }
            return nil
        }
        return Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"])
    }
}

/// Signature Version 4 for S3 requests without a body.
public enum SigV4 {
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The headers to add to a request: `x-amz-date`, `x-amz-content-sha256`, the session token,
    /// and `Authorization`.
    /// `alsoSign` names further headers of `headers` to sign (lower case); `x-amz-*` always are.
    public static func sign(
        method: String, host: String, path: String, query: [(String, String)], headers: [(String, String)],
        credentials: Credentials, region: String, date: Date, alsoSign: Set<String> = []
    ) -> [(String, String)] {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amzDate = formatter.string(from: date)
        let day = String(amzDate.prefix(8))
        var signed: [(String, String)] = [("host", host), ("x-amz-content-sha256", emptyPayloadHash), ("x-amz-date", amzDate)]
        if let token = credentials.sessionToken { signed.append(("x-amz-security-token", token)) }
        for (name, value) in headers where name.lowercased().hasPrefix("x-amz-") || alsoSign.contains(name.lowercased()) {
            signed.append((name.lowercased(), value.trimmingCharacters(in: .whitespaces)))
        }
        signed.sort { $0.0 < $1.0 }
        let canonicalHeaders = signed.map { "\($0.0):\($0.1)\n" }.joined()
        let signedHeaders = signed.map(\.0).joined(separator: ";")
        let encodedQuery: [(String, String)] = query.map { pair in (uriEncode(pair.0, keepSlash: false), uriEncode(pair.1, keepSlash: false)) }
        let sortedQuery = encodedQuery.sorted { a, b in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        let canonicalQuery = sortedQuery.map { pair in pair.0 + "=" + pair.1 }.joined(separator: "&")
        let canonicalRequest = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, emptyPayloadHash].joined(separator: "\n")
        let scope = "\(day)/\(region)/s3/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, hex(SHA256.hash(data: Data(canonicalRequest.utf8)))].joined(separator: "\n")
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, "s3", "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        var out: [(String, String)] = [("x-amz-date", amzDate), ("x-amz-content-sha256", emptyPayloadHash)]
        if let token = credentials.sessionToken { out.append(("x-amz-security-token", token)) }
        out.append(("Authorization", "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"))
        return out
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }
}
