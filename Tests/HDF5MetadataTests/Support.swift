import TestSupport
import ByteSource
import Foundation
import HDF5Metadata
import XCTest

enum TestData {
    /// The fixture matrix written by `tools/make-fixtures.py` (tools/test sets the variable).
    static func fixtureDirectory() throws -> URL {
        guard let directory = FixtureLocation.directory() else {
            if FixtureLocation.isCI { XCTFail(FixtureLocation.missing + " (CI must not skip)") }
            throw XCTSkip(FixtureLocation.missing)
        }
        return directory
    }

    static func fixtureFiles() throws -> [URL] {
        let directory = try fixtureDirectory()
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        // netcdf3-*.nc are netCDF-3 (Tests/NetCDF3Tests), not HDF5.
        let files = names.filter { ($0.hasSuffix(".h5") || $0.hasSuffix(".nc")) && !$0.hasPrefix("netcdf3-") }.sorted()
            .map { directory.appendingPathComponent($0) }
        XCTAssertGreaterThan(files.count, 20, "the fixture matrix looks incomplete in \(directory.path)")
        return files
    }

    static func bytes(_ url: URL) throws -> [UInt8] { [UInt8](try Data(contentsOf: url)) }
}
