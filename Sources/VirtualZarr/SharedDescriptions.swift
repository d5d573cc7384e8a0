import JSONValue

/// The variable descriptions, shapes and attributes the files of a scan have in common, so that
/// each file's dataset, held until every file is scanned and combined, keeps only what is its
/// own: its chunks and its objects. A year of WRF files describes the same 41 variables 365
/// times; sharing them takes a file's dataset from about 60 KiB to a few KiB (docs/scaling.md).
///
/// Sharing changes no value: an array takes a description only when it is equal to its own,
/// and any later change to either copies it first.
public struct SharedDescriptions: Sendable {
    private struct Known {
        var description: VirtualArray.Description
        var shape: [UInt64]
        var gridShape: [Int]
    }

    private var arrays: [String: Known] = [:]
    private var groupAttributes: [String: [(String, JSON)]] = [:]
    private var unlimitedDimensions: [String] = []

    public init() {}

    /// `dataset` with every description, shape, grid shape and group attribute list that equals
    /// the last one seen for the same path replaced by that one, and its arrays in a buffer of
    /// their exact count. What differs becomes the one seen last, since files that change (a
    /// new attribute from some date on) usually stay changed.
    public mutating func compact(_ dataset: inout VirtualDataset) {
        dataset.arrays = dataset.arrays.map { original in
            var array = original
            if var known = arrays[array.path] {
                if !array.shareDescription(known.description) { known.description = array.described }
                if array.shape == known.shape { array.shape = known.shape } else { known.shape = array.shape }
                if !array.manifest.shareGridShape(known.gridShape) { known.gridShape = array.manifest.gridShape }
                arrays[array.path] = known
            } else {
                arrays[array.path] = Known(description: array.described, shape: array.shape, gridShape: array.manifest.gridShape)
            }
            return array
        }
        dataset.groups = dataset.groups.map { original in
            var group = original
            if let known = groupAttributes[group.path], known.elementsEqual(group.attributes, by: { $0.0 == $1.0 && $0.1 == $1.1 }) {
                group.attributes = known
            } else {
                groupAttributes[group.path] = group.attributes
            }
            return group
        }
        if dataset.unlimitedDimensions == unlimitedDimensions {
            dataset.unlimitedDimensions = unlimitedDimensions
        } else {
            unlimitedDimensions = dataset.unlimitedDimensions
        }
    }
}
