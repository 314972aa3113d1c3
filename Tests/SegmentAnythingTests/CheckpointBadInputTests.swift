import Foundation
import Testing
import ZIPFoundation

@testable import NN
@testable import Tensor

/// Damaged or hostile checkpoints fail with a specific message naming the problem.
@Suite struct CheckpointBadInputTests {
    let source = SAMFixture.folder + "/tiny_a.pth"

    /// Copies tiny_a.pth entry by entry into a new zip, letting `edit` change or drop entries.
    func rewrite(_ edit: (String, Data) -> Data?) throws -> String {
        let dir = NSTemporaryDirectory() + "ckpt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let out = dir + "/bad.pth"
        let src = try Archive(url: URL(fileURLWithPath: source), accessMode: .read)
        let dst = try Archive(url: URL(fileURLWithPath: out), accessMode: .create)
        for entry in src {
            var data = Data()
            _ = try src.extract(entry) { data.append($0) }
            guard let edited = edit(entry.path, data) else { continue }
            try dst.addEntry(with: entry.path, type: .file, uncompressedSize: Int64(edited.count), compressionMethod: .none) { pos, size in
                edited.subdata(in: Int(pos)..<(Int(pos) + size))
            }
        }
        return out
    }

    func message(_ path: String) -> String {
        do {
            _ = try TorchCheckpoint.load(path)
            return "no error"
        } catch let e as CheckpointError {
            return e.description
        } catch {
            return "\(error)"
        }
    }

    @Test func intactCopyLoads() throws {
        let path = try rewrite { _, d in d }
        let t = try TorchCheckpoint.load(path)
        #expect(t.count == 188)
    }

    @Test func truncatedStorageIsNamed() throws {
        // Storage "0" holds the first tensor; cut it to a few bytes.
        let path = try rewrite { name, d in name.hasSuffix("/data/0") ? d.prefix(8) : d }
        let msg = message(path)
        #expect(msg.contains("needs") && msg.contains("bytes of storage") && msg.contains("truncated"), "\(msg)")
    }

    @Test func missingStorageEntry() throws {
        let path = try rewrite { name, d in name.hasSuffix("/data/3") ? nil : d }
        let msg = message(path)
        #expect(msg.contains("truncated") || msg.contains("storage"), "\(msg)")
    }

    @Test func pickleAskingForCodeIsRefused() throws {
        // Replace the first GLOBAL (collections OrderedDict) with one naming os.system (same length).
        let path = try rewrite { name, d in
            guard name.hasSuffix("data.pkl") else { return d }
            var bytes = [UInt8](d)
            let needle = Array("collections\nOrderedDict\n".utf8), evil = Array("posix\nsystem\n".utf8)
            guard let i = (0...(bytes.count - needle.count)).first(where: { Array(bytes[$0..<($0 + needle.count)]) == needle }) else { return d }
            bytes.replaceSubrange(i..<(i + needle.count), with: evil)
            return Data(bytes)
        }
        let msg = message(path)
        #expect(msg.contains("refusing") && msg.contains("posix.system"), "\(msg)")
    }

    @Test func notAZipOrNotACheckpoint() throws {
        let dir = NSTemporaryDirectory() + "ckpt-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Data("hello".utf8).write(to: URL(fileURLWithPath: dir + "/x.pth"))
        #expect(message(dir + "/x.pth").contains("not a zip"))
        #expect(message(dir + "/none.pth").contains("no such file"))
        let noPickle = try rewrite { name, d in name.hasSuffix("data.pkl") ? nil : d }
        #expect(message(noPickle).contains("no data.pkl"))
    }

    @Test func safetensorsRoundTripAndDamage() throws {
        let t = ["a.b": Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]), "c": Tensor(shape: [1], data: [-7])]
        let data = try SafeTensors.encode(t, metadata: ["format": "pt"])
        let back = try SafeTensors.decode(data)
        #expect(back.tensors == t && back.metadata["format"] == "pt")
        #expect(throws: CheckpointError.self) { _ = try SafeTensors.decode(data.prefix(data.count - 4)) }
        #expect(throws: CheckpointError.self) { _ = try SafeTensors.decode(Data([1, 2, 3])) }
    }
}
