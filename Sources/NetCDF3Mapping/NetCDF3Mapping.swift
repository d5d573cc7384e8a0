import Foundation
import JSONValue
import NetCDF3
import VirtualZarr

/// netCDF-3 → Zarr, as `NetCDFMapping` does for netCDF-4: dimension names from the header,
/// attributes with their netCDF types, `_FillValue` as Zarr's fill value, big-endian dtypes
/// (the bytes are referenced where they lie, never converted).
public enum NetCDF3Mapping {
    /// Attributes that become something else in Zarr (`_FillValue` is the fill value) or that
    /// would clobber Zarr v2's dimension names.
    static let hiddenAttributes: Set<String> = ["_FillValue", "_ARRAY_DIMENSIONS"]

    /// The file's variables as Zarr arrays whose chunks are byte ranges of object `objectID`:
    /// a fixed-size variable is one contiguous chunk (split along its leading axes above
    /// `options.contiguousSplitThreshold`), a record variable one chunk per record. `fetch`
    /// reads the object, for the variables `options` asks to inline.
    public static func dataset(
        from header: NetCDF3Header, objectID: UInt32, options: MappingOptions = MappingOptions(),
        fetch: @escaping ByteFetcher
    ) async throws -> VirtualDataset {
        var result = VirtualDataset(groups: [VirtualGroup(path: "", attributes: attributes(header.attributes))])
        if let unlimited = header.unlimitedDimension { result.unlimitedDimensions = [unlimited.name] }
        // The concat coordinate's attributes, once per file: its bounds share its units.
        let concatCoordinate = options.timeVariablesAlong.flatMap { along in header.variables.first { $0.name == along } }.map {
            attributes($0.attributes)
        }
        for variable in header.variables {
            do {
                result.arrays.append(
                    try await array(
                        variable, header: header, objectID: objectID, options: options, concatCoordinate: concatCoordinate, fetch: fetch,
                        warnings: &result.warnings))
            } catch let error as MappingError {
                result.warnings.append("\(header.name): \(variable.name) left out: \(error)")
            } catch let error as CodecError {
                result.warnings.append("\(header.name): \(variable.name) left out: \(error)")
            }
        }
        return result
    }

    /// The Zarr type of a netCDF type: big-endian, as the file stores it; chars are one-byte
    /// strings, the character dimension kept as the last axis.
    public static func zarrType(_ type: NetCDF3Type) -> ZarrDataType {
        switch type {
        case .byte: return .integer(size: 1, signed: true)
        case .char: return .fixedBytes(1)
        case .short: return .integer(size: 2, signed: true, bigEndian: true)
        case .int: return .integer(size: 4, signed: true, bigEndian: true)
        case .float: return .float(size: 4, bigEndian: true)
        case .double: return .float(size: 8, bigEndian: true)
        case .ubyte: return .integer(size: 1, signed: false)
        case .ushort: return .integer(size: 2, signed: false, bigEndian: true)
        case .uint: return .integer(size: 4, signed: false, bigEndian: true)
        case .int64: return .integer(size: 8, signed: true, bigEndian: true)
        case .uint64: return .integer(size: 8, signed: false, bigEndian: true)
        }
    }

    /// netCDF's default fill value of each type (`NC_FILL_*`), big-endian: what netCDF-C writes
    /// where a variable has no `_FillValue` and no data was written.
    public static func defaultFillBytes(_ type: NetCDF3Type) -> [UInt8] {
        switch type {
        case .byte: return [0x81]
        case .char: return [0x00]
        case .short: return [0x80, 0x01]
        case .int: return [0x80, 0x00, 0x00, 0x01]
        case .float: return [0x7c, 0xf0, 0x00, 0x00]  // 9.96921e+36
        case .double: return [0x47, 0x9e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]  // 9.969209968386869e+36
        case .ubyte: return [0xff]
        case .ushort: return [0xff, 0xff]
        case .uint: return [0xff, 0xff, 0xff, 0xff]
        case .int64: return [0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02]
        case .uint64: return [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        }
    }

    static func array(
        _ variable: NetCDF3Variable, header: NetCDF3Header, objectID: UInt32, options: MappingOptions,
        concatCoordinate: [(String, JSON)]? = nil, fetch: @escaping ByteFetcher, warnings: inout [String]
    ) async throws -> VirtualArray {
        let dtype = zarrType(variable.type)
        let dimensions = header.dimensionNames(of: variable)
        var fillValue = JSON.null
        var fillBytes = defaultFillBytes(variable.type)
        if let fill = variable.attribute("_FillValue") {
            if fill.type == variable.type, fill.raw.count >= variable.type.size {
                fillBytes = Array(fill.raw.prefix(variable.type.size))
                fillValue = dtype.fillValueJSON(fillBytes) ?? .null
            } else {
                // netCDF-C refuses such a _FillValue when writing; a reader cannot use it.
                warnings.append(
                    "\(header.name): \(variable.name): its _FillValue is \(fill.type) with \(fill.values.count) values, not one \(variable.type); ignored"
                )
            }
        }
        var array = VirtualArray(
            path: variable.name, dtype: dtype, shape: variable.shape, chunkShape: [], codecs: [], fillValue: fillValue,
            fillBytes: fillBytes, dimensionNames: dimensions, attributes: attributes(variable.attributes),
            manifest: ChunkManifest(gridShape: []), origin: header.name)
        let itemSize = UInt64(variable.type.size)
        if variable.isRecord {
            // One record at a time: records of all record variables are interleaved.
            array.chunkShape = [1] + variable.shape.dropFirst().map { max($0, 1) }
            array.manifest = try ChunkManifest.empty(shape: array.shape, chunks: array.chunkShape)
            if array.manifest.count > 0 {
                var record: UInt64 = 0
                var offset = variable.begin
                // Records past the file's end (a writer that died, or a hostile count) stay
                // missing and read as the fill value; the loop never runs past the file.
                while record < header.numrecs, offset < header.fileSize {
                    array.manifest[Int(record)] = .reference(object: objectID, offset: offset, length: variable.dataSize)
                    record += 1
                    let (next, overflow) = offset.addingReportingOverflow(header.recordSize)
                    guard !overflow, header.recordSize > 0 else { break }
                    offset = next
                }
                if record < header.numrecs {
                    warnings.append(
                        "\(header.name): \(variable.name): records \(record) to \(header.numrecs - 1) lie past the end of the file (\(header.fileSize) bytes) and read as the fill value"
                    )
                }
            }
        } else {
            array.chunkShape = ContiguousSplit.chunkShape(shape: variable.shape, itemSize: itemSize, threshold: options.contiguousSplitThreshold)
            array.manifest = try ChunkManifest.empty(shape: array.shape, chunks: array.chunkShape)
            if array.manifest.count == 1 {
                array.manifest[0] = .reference(object: objectID, offset: variable.begin, length: variable.dataSize)
            } else if array.manifest.count > 1 {
                // The grid divides only leading axes, so its chunks are consecutive byte ranges.
                // Chunks past the file's end stay missing (read as the fill value), which also
                // bounds the work a header claiming an enormous variable can cause.
                let chunkBytes = array.chunkShape.reduce(itemSize, *)
                var linear = 0
                var offset = variable.begin
                while linear < array.manifest.count, offset < header.fileSize {
                    array.manifest[linear] = .reference(object: objectID, offset: offset, length: chunkBytes)
                    linear += 1
                    offset += chunkBytes
                }
                if linear < array.manifest.count {
                    warnings.append(
                        "\(header.name): \(variable.name): chunks \(linear) to \(array.manifest.count - 1) lie past the end of the file (\(header.fileSize) bytes) and read as the fill value"
                    )
                }
            }
        }
        let time = options.timeUnits(name: variable.name, own: array.attributes, coordinate: concatCoordinate)
        if options.inlineVariables.contains(array.name) {
            array = try await ArrayValues.inlined(array, fetch: fetch, maxBytes: options.maxInlineBytes)
        } else if let limit = options.comparedValuesLimit(
            name: variable.name, dimensions: dimensions, dtype: array.dtype, shape: array.shape, units: time.units,
            isConcatBounds: time.isConcatBounds)
        {
            array = try await ArrayValues.inlined(array, fetch: fetch, maxBytes: limit)
        }
        return array
    }

    /// Attributes as netCDF4-python and xarray present them: numbers as numbers, one value as a
    /// scalar, text as a string, non-finite floats as the bare literals Python's json reads.
    static func attributes(_ list: [NetCDF3Attribute]) -> [(String, JSON)] {
        list.filter { !hiddenAttributes.contains($0.name) }.map { ($0.name, attributeJSON($0.values)) }
    }

    static func attributeJSON(_ values: NetCDF3Values) -> JSON {
        func float(_ v: Double) -> JSON {
            if v.isNaN { return .literal("NaN") }
            if v.isInfinite { return .literal(v > 0 ? "Infinity" : "-Infinity") }
            return .double(v)
        }
        let items: [JSON]
        switch values {
        // netCDF4-python (and so xarray) drops every NUL of a char attribute (`"\000"` reads as
        // ""), as the HDF5 mapping does for scalar fixed strings.
        case .text(let text): return .string(String(String.UnicodeScalarView(text.unicodeScalars.filter { $0 != "\0" })))
        case .bytes(let v): items = v.map { .int(Int64($0)) }
        case .shorts(let v): items = v.map { .int(Int64($0)) }
        case .ints(let v): items = v.map { .int(Int64($0)) }
        case .int64s(let v): items = v.map { .int($0) }
        case .ubytes(let v): items = v.map { .uint(UInt64($0)) }
        case .ushorts(let v): items = v.map { .uint(UInt64($0)) }
        case .uints(let v): items = v.map { .uint(UInt64($0)) }
        case .uint64s(let v): items = v.map { .uint($0) }
        case .floats(let v): items = v.map { float(Double($0)) }
        case .doubles(let v): items = v.map { float($0) }
        }
        return items.count == 1 ? items[0] : .array(items)
    }
}
