import Foundation
import Fuzzing

// `autosam-fuzz`: the fuzzing harnesses of docs/RELIABILITY.md.
//   autosam-fuzz list                         the harnesses
//   autosam-fuzz seeds <folder>               writes the seed inputs, one subfolder per harness
//   autosam-fuzz <harness> <file|folder>...   replays inputs (what the tests do with the corpora)
// Built with `-sanitize=fuzzer` and `-D AUTOSAM_LIBFUZZER` (make fuzz-build), a harness name
// followed by libFuzzer's own arguments runs libFuzzer on that harness instead.

#if AUTOSAM_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

nonisolated(unsafe) var selected: FuzzHarness?
#endif

func usage() -> Never {
    FileHandle.standardError.write(Data("usage: autosam-fuzz list | seeds <folder> | <harness> <file|folder>...\n".utf8))
    exit(2)
}

let args = CommandLine.arguments
guard args.count >= 2 else { usage() }
switch args[1] {
case "list":
    for h in FuzzHarnesses.all { print(h.name.padding(toLength: 16, withPad: " ", startingAt: 0), h.summary) }
case "seeds":
    guard args.count == 3 else { usage() }
    do { try FuzzSeeds.write(into: args[2]) } catch {
        FileHandle.standardError.write(Data("seeds: \(error)\n".utf8))
        exit(1)
    }
default:
    guard let harness = FuzzHarnesses.named(args[1]) else {
        FileHandle.standardError.write(Data("no harness '\(args[1])'; `autosam-fuzz list` names them\n".utf8))
        exit(2)
    }
    #if AUTOSAM_LIBFUZZER
    selected = harness
    var argv: [UnsafeMutablePointer<CChar>?] = [strdup(args[0])] + args.dropFirst(2).map { strdup($0) } + [nil]
    var argc = CInt(argv.count - 1)
    let rc = argv.withUnsafeMutableBufferPointer { buf -> CInt in
        var base = buf.baseAddress
        return LLVMFuzzerRunDriver(&argc, &base) { data, size in
            _ = selected!.run(size == 0 ? Data() : Data(bytes: data!, count: size))
            return 0
        }
    }
    exit(rc)
    #else
    var inputs: [String] = []
    for a in args.dropFirst(2) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: a, isDirectory: &isDir) else { usage() }
        if isDir.boolValue {
            inputs += ((try? FileManager.default.contentsOfDirectory(atPath: a)) ?? []).sorted().map { a + "/" + $0 }
        } else {
            inputs.append(a)
        }
    }
    var accepted = 0
    for path in inputs {
        guard let data = FileManager.default.contents(atPath: path) else { continue }
        if harness.run(data) { accepted += 1 }
    }
    print("\(harness.name): \(inputs.count) inputs ran, \(accepted) accepted")
    #endif
}
