import Foundation
import Testing

@testable import NN

@Suite struct PickleTests {
    @Test func refusesForbiddenGlobals() throws {
        // GLOBAL 'os system' then STOP.
        var bytes: [UInt8] = [0x80, 0x02, 0x63]
        bytes += Array("os\nsystem\n".utf8)
        bytes.append(0x2E)
        var u = RestrictedUnpickler(Data(bytes))
        #expect(throws: CheckpointError.forbiddenPickle("global os.system")) { _ = try u.load() }
    }
}
