import CardiacImaging
import Foundation
import Fuzzing
import Testing

@testable import AutoSAM
@testable import NN
@testable import Service

/// What fuzzing found, each with the error a person now reads instead of a crash. The inputs
/// themselves are also in Fuzz/regressions/<harness>/ and replayed by FuzzCorpusTests.
@Suite struct FuzzRegressionTests {
    static func safetensors(header: String) -> Data {
        var d = Data()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(Data(header.utf8))
        return d
    }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    /// A header length of 2^64 - 1 trapped converting to Int.
    @Test func safetensorsHeaderLengthBeyondIntIsAnError() {
        var d = Data(repeating: 0xFF, count: 8)
        d.append(Data("{}".utf8))
        #expect(message { try SafeTensors.decode(d) }.contains("header length 18446744073709551615 does not fit the file"))
    }

    /// Shapes whose element count overflows, or that are negative (two negatives made a
    /// positive count), trapped or built a tensor of negative shape.
    @Test func safetensorsShapesThatOverflowOrAreNegativeAreErrors() {
        let big = Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}"#)
        #expect(message { try SafeTensors.decode(big) }.contains("is negative or too large"))
        var neg = Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[-1,-2],"data_offsets":[0,8]}}"#)
        neg.append(Data(count: 8))
        #expect(message { try SafeTensors.decode(neg) }.contains("is negative or too large"))
        let far = Self.safetensors(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775803,9223372036854775807]}}"#)
        #expect(message { try SafeTensors.decode(far) }.contains("truncated") || message { try SafeTensors.decode(far) }.contains("storage"))
    }

    /// 5,000 nested one-item tuples, then a dict key that is not a string: describing the key
    /// for the error recursed until the stack overflowed. Nesting is now refused past 64
    /// levels, and errors name a value's kind, never the whole value.
    @Test func deeplyNestedPickleValuesAreRefusedNotDescribed() throws {
        func load(_ bytes: [UInt8]) -> String { message { var u = RestrictedUnpickler(Data(bytes)); return try u.load() } }
        let deep: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 5000) + [0x2E]
        #expect(load(deep).contains("values nested more than 64 deep"), "\(load(deep).prefix(200))")
        let shallow: [UInt8] = [0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 64) + [0x2E]
        #expect(load(shallow) == "no error")
        // A dict key that is a (nested) tuple: the message says what it is, briefly.
        let key: [UInt8] = [0x80, 0x02, 0x7D, 0x4E, 0x85, 0x85, 0x4E, 0x73, 0x2E]
        #expect(load(key).contains("dict key is not a string: a tuple of 1"), "\(load(key))")
        let found = try Data(contentsOf: URL(fileURLWithPath: FuzzCorpusTests.root + "/regressions/pickle/tuples_nested_5000_deep"))
        #expect(message { var u = RestrictedUnpickler(found); return try u.load() }.contains("nested more than 64 deep"))
    }

    /// Negative strides read before the storage; a zero stride made a 4-byte storage into a
    /// tensor of 2^40 elements; huge sizes overflowed the element count.
    @Test func checkpointTensorsReachingOutsideTheirStorageAreErrors() {
        let storage = RestrictedUnpickler.StorageRef(dtype: "FloatStorage", key: "0", numel: 4)
        let bytes = Data(count: 16)
        func ref(_ offset: Int, _ size: [Int], _ stride: [Int]) -> RestrictedUnpickler.TensorRef {
            RestrictedUnpickler.TensorRef(storage: storage, offset: offset, size: size, stride: stride)
        }
        #expect(message { try TorchCheckpoint.materialize("w", ref(3, [4], [-1]), bytes) }.contains("invalid size or stride"))
        #expect(message { try TorchCheckpoint.materialize("w", ref(0, [1 << 20, 1 << 20], [0, 0]), bytes) }.contains("elements but its storage holds 4"))
        #expect(message { try TorchCheckpoint.materialize("w", ref(0, [1 << 40, 1 << 40], [1, 1]), bytes) }.contains("invalid size or stride"))
        #expect(message { try TorchCheckpoint.materialize("w", ref(0, [2, 1 << 62], [1 << 62, 1]), bytes) }.contains("invalid size or stride")
                || message { try TorchCheckpoint.materialize("w", ref(0, [2, 1 << 62], [1 << 62, 1]), bytes) }.contains("reaches past"))
        // The valid view still loads.
        #expect(message { try TorchCheckpoint.materialize("w", ref(1, [3], [1]), bytes) } == "no error")
    }

    /// toml++ (inside TOMLKit) aborted the process on a non-ASCII or DEL character in a table
    /// name; such text is now refused, with its place, before it reaches the parser.
    @Test func configCharactersTheTOMLParserAbortsOnAreErrors() {
        let nonASCII = message { try ServiceConfig.parse("[paths]\ndata = \"/x\"\n[ñbox]\n") }
        #expect(nonASCII.contains("a non-ASCII character in a key (quote it)") && nonASCII.hasSuffix("at line 3, column 2"), "\(nonASCII)")
        #expect(message { try ServiceConfig.parse("[=p") }.contains("a key is missing or malformed at line 1, column 2"))
        #expect(message { try ServiceConfig.parse("[paths] x\n") }.contains("unexpected 'x' after the end of the statement at line 1, column 9"))
        #expect(message { try ServiceConfig.parse("[paths]\ndata \"/x\"\n") }.contains("'=' expected after the key at line 2, column 6"))
        // toml++ also asserted on a malformed value (`1(/d-fi-u~ 2,1/@8`).
        #expect(message { try ServiceConfig.parse("[inbox]\nquiet_period_s = 1(/d\n") }.contains("unexpected '(' after the end of the statement at line 2, column 19"))
        #expect(message { try ServiceConfig.parse("[inbox]\nquiet_period_s = (\n") }.contains("a value that is not a string, number, boolean, date, array or table at line 2, column 18"))
        #expect(message { try ServiceConfig.parse("[series]\nprefer = [\"a\" \"b\"]\n") }.contains("',' or ']' expected in an array at line 2, column 15"))
        #expect(message { try ServiceConfig.parse("[\u{7F}aths]\ndata = \"/x\"\n") }.contains("control character (0x7F) at line 1, column 2"))
        #expect(message { try ServiceConfig.parse("[paths]\ndata = \"/x\u{0}y\"\n") }.contains("control character (0x00) at line 2, column 11"))
        // Non-ASCII inside strings and comments is TOML, and is kept.
        let c = try? ServiceConfig.parse("[paths] # données\ndata = \"/var/lib/données\"\n")
        #expect(c?.data == "/var/lib/données")
        // The shipped configuration (arrays over several lines, comments, every key) passes.
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Config/autosam.toml").path
        let text = try? String(contentsOfFile: shipped, encoding: .utf8)
        #expect(text != nil && TOMLShape.firstProblem(text!) == nil)
    }

    /// Zip entries of a .pth claiming more than the file holds: a file entry claiming 4 GiB was
    /// reserved up front; a "symlink" entry claiming 1.8 GB was read in one allocation.
    @Test func checkpointEntriesClaimingMoreThanTheFileAreRefused() {
        let dir = FuzzCorpusTests.root + "/regressions/checkpoint"
        #expect(message { try TorchCheckpoint.load(dir + "/entry_claims_4_GiB") }.contains("stored bytes can hold"))
        #expect(message { try TorchCheckpoint.load(dir + "/symlink_entry_claims_1_8_GB") }.contains("is a symbolic link, not a file"))
    }

    /// A 684-byte DICOM file whose Rows, Columns and Number of Frames claim gigabytes of pixels
    /// had them allocated before the pixel data was looked at.
    @Test func dicomPixelsThatCannotFitTheFileAreRefusedBeforeAllocation() throws {
        let path = FuzzCorpusTests.root + "/regressions/dicom-file/pixels_larger_than_the_file"
        let headers = try DicomFile.readHeaders(path)
        let h = try #require(headers.first)
        #expect(message { try DicomFile.readPixels(h) }.contains("cannot fit in a file of 684 bytes"))
    }

    /// An embedding cache entry whose shape overflows the element count is a miss, not a tensor.
    @Test func embeddingCacheEntryWithOverflowingShapeIsAMiss() {
        var payload = Data()
        for v: UInt32 in [4, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF] { withUnsafeBytes(of: v.littleEndian) { payload.append(contentsOf: $0) } }
        payload.append(Data(count: 2))
        #expect(FuzzHarnesses.named("embedding-cache")!.run(payload) == false)
        var ok = Data()
        for v: UInt32 in [1, 1] { withUnsafeBytes(of: v.littleEndian) { ok.append(contentsOf: $0) } }
        ok.append(Data(count: 2))
        #expect(FuzzHarnesses.named("embedding-cache")!.run(ok) == true)
    }
}
