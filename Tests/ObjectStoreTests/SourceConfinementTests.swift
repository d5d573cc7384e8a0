import Foundation
import XCTest
@testable import ObjectStore

final class SourceConfinementTests: XCTestCase {
    func testALocalReferenceFileMayNameOnlyFilesUnderItsDirectory() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("confine-\(getpid())").path
        try FileManager.default.createDirectory(atPath: root + "/refs/data", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/elsewhere", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: root + "/refs/data/a.nc", contents: Data([1]))
        FileManager.default.createFile(atPath: root + "/elsewhere/b.nc", contents: Data([1]))
        try? FileManager.default.removeItem(atPath: root + "/refs/data/link.nc")
        try FileManager.default.createSymbolicLink(atPath: root + "/refs/data/link.nc", withDestinationPath: root + "/elsewhere/b.nc")
        defer { try? FileManager.default.removeItem(atPath: root) }

        let confinement = try SourceConfinement(referencesAt: root + "/refs/r.json", allowSources: [], workingDirectory: "/")
        XCTAssertNil(confinement.refusal(of: root + "/refs/data/a.nc", workingDirectory: "/"))
        XCTAssertNil(confinement.refusal(of: "file://" + root + "/refs/data/a.nc", workingDirectory: "/"))
        XCTAssertNil(confinement.refusal(of: "data/a.nc", workingDirectory: root + "/refs"))
        for outside in [
            "/etc/shadow", root + "/refs/../elsewhere/b.nc", root + "/refs/data/link.nc", root + "/refs-other/x.nc",
            "data/../../elsewhere/b.nc", "http://127.0.0.1:8080/admin", "s3://bucket/key",
        ] {
            let reason = confinement.refusal(of: outside, workingDirectory: root + "/refs")
            XCTAssertNotNil(reason, outside)
            XCTAssertTrue(reason?.contains(root + "/refs/") ?? false, "the reason names what is allowed: \(reason ?? "")")
        }
        XCTAssertNotNil(confinement.refusal(of: "ftp://host/x", workingDirectory: "/"))
        XCTAssertNotNil(confinement.refusal(of: "/tmp/a\0b", workingDirectory: "/"))

        let widened = try SourceConfinement(
            referencesAt: root + "/refs/r.json", allowSources: [root + "/elsewhere", "https://data.example.org/archive/"],
            workingDirectory: "/")
        XCTAssertNil(widened.refusal(of: root + "/refs/data/link.nc", workingDirectory: "/"))
        XCTAssertNil(widened.refusal(of: "https://data.example.org/archive/2020/x.nc", workingDirectory: "/"))
        XCTAssertNil(widened.refusal(of: "https://DATA.example.org:443/archive/x.nc", workingDirectory: "/"))
        XCTAssertNotNil(widened.refusal(of: "https://data.example.org/archive-private/x.nc", workingDirectory: "/"))
        XCTAssertNotNil(widened.refusal(of: "http://data.example.org/archive/x.nc", workingDirectory: "/"), "another scheme is another origin")
        XCTAssertNotNil(widened.refusal(of: "https://data.example.org/archive/../secret", workingDirectory: "/"))
        XCTAssertNotNil(widened.refusal(of: "https://data.example.org/archive/%2E%2e/secret", workingDirectory: "/"))
    }

    func testARemoteReferenceFileMayNameOnlyItsOwnOrigin() throws {
        let http = try SourceConfinement(referencesAt: "http://127.0.0.1:8000/refs/r.json", allowSources: [], workingDirectory: "/")
        XCTAssertNil(http.refusal(of: "http://127.0.0.1:8000/data/x.nc", workingDirectory: "/"))
        XCTAssertNil(http.refusal(of: "http://127.0.0.1:8000/data/x.nc?v=1", workingDirectory: "/"))
        for outside in [
            "http://127.0.0.1:8001/data/x.nc", "http://127.0.0.1/data/x.nc", "https://127.0.0.1:8000/x.nc",
            "http://127.0.0.1:8000@evil.example/x.nc", "http://localhost:8000/x.nc", "/etc/passwd", "data/x.nc",
        ] {
            XCTAssertNotNil(http.refusal(of: outside, workingDirectory: "/"), outside)
        }
        let s3 = try SourceConfinement(referencesAt: "s3://bucket/refs/r.json", allowSources: [], workingDirectory: "/")
        XCTAssertNil(s3.refusal(of: "s3://bucket/data/x.nc", workingDirectory: "/"))
        XCTAssertNotNil(s3.refusal(of: "s3://other-bucket/data/x.nc", workingDirectory: "/"))
        XCTAssertNotNil(s3.refusal(of: "s3://bucket/data/../../x", workingDirectory: "/"))
        XCTAssertThrowsError(try SourceConfinement(referencesAt: "s3://bucket/r.json", allowSources: ["gopher://x"], workingDirectory: "/")) {
            XCTAssertTrue("\($0)".contains("--allow-source gopher://x"), "\($0)")
        }
    }

    func testRedirectTargetsResolveAgainstTheRequest() {
        XCTAssertEqual(RemoteStore.resolve("/b/c.nc", against: "http://h:1/a/x.nc?q"), "http://h:1/b/c.nc")
        XCTAssertEqual(RemoteStore.resolve("c.nc", against: "http://h:1/a/x.nc"), "http://h:1/a/c.nc")
        XCTAssertEqual(RemoteStore.resolve("//other/c.nc", against: "https://h/a/x.nc"), "https://other/c.nc")
        XCTAssertEqual(RemoteStore.resolve("http://other:2/c.nc", against: "http://h:1/a"), "http://other:2/c.nc")
    }

    func testLocalIdentityChangesWhenAFileIsRewrittenInPlaceWithItsMtimeRestored() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("identity-\(getpid()).bin").path
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 64))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let before = try LocalStore.describe(path)
        let mtime = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)
        usleep(20_000)  // the clock moves on, so the rewrite's ctime differs (the point of the test)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.write(Data(repeating: 2, count: 64))
        try handle.close()
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: path)
        let after = try LocalStore.describe(path)
        XCTAssertEqual(before.size, after.size)
        XCTAssertEqual(before.lastModified, after.lastModified)
        XCTAssertNotEqual(before.identity, after.identity, "same size and mtime, but the ctime moved")
        try FileManager.default.removeItem(atPath: path)
        XCTAssertThrowsError(try LocalStore.describe(path)) { XCTAssertEqual(($0 as? ObjectStoreError)?.kind, .notFound) }
    }
}
