import CDNNL
import CardiacImaging
import Foundation
import Testing

@testable import AutoSAM
@testable import NN
@testable import Tensor

/// "Same seed, same machine: the same weights, bit for bit" (docs/ARCHITECTURE.md), whatever
/// else the process is doing. Two identical fits once differed when other tests ran beside
/// them: a parallel region that finds the cores taken runs serially on its calling thread,
/// whose products then ran with that thread's OpenMP team size (the machine's cores on a
/// fresh thread, 1 on a thread that had served as a worker before) instead of the 1 they get
/// on a worker; oneDNN's results depend on the team size. The team size is now a function of
/// where a product runs (1 inside a parallel region, all cores outside), never of history.
@Suite(.serialized) struct DeterminismTests {
    /// A CNN head on 64-channel 8x8 embeddings: products large enough that oneDNN splits them
    /// between threads when it is given several.
    func samples(_ n: Int, seed: UInt64) -> [TrainingSample] {
        var r = Initializer(state: seed)
        return (0..<n).map { _ in
            var emb = Tensor(shape: [64, 8, 8], data: (0..<(64 * 64)).map { _ in 0.5 * r.uniform() })
            var labels = [Int](repeating: 0, count: 32 * 32)
            for y in 0..<32 {
                for x in 0..<32 {
                    let c = Int((r.uniform() + 1) * 2) % 4
                    if (x + y) % 7 == 0 { labels[y * 32 + x] = c }
                }
            }
            for p in 0..<64 { emb.data[(p % 4) * 64 + p] += 1 }
            return TrainingSample(embedding: emb, labels: labels, source: "toy")
        }
    }

    func fit() -> FitResult {
        var options = TrainingOptions()
        options.epochs = 3
        options.learningRate = 1e-3
        options.patience = 10
        let head = CNNHead(inChannels: 64, classes: 4, seed: 11)
        let reports = Trainer.fit(head, train: samples(8, seed: 3), validation: samples(2, seed: 4), options: options)
        return FitResult(losses: reports.map(\.loss), weights: head.parameters.map(\.1.value.data))
    }

    /// Runs `body` on a new thread (as a test task or a daemon's job would run) and waits.
    func onNewThread(_ body: @escaping @Sendable () -> FitResult) -> FitResult {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let t = Thread { box.value = body(); done.signal() }
        t.stackSize = 8 << 20
        t.start()
        done.wait()
        return box.value!
    }

    @Test func aFitIsTheSameBitForBitWhateverRunsBesideIt() {
        let alone = fit()
        // The same fit from a thread whose OpenMP team size was left at 1 (as a worker's is)...
        let afterWorker = onNewThread {
            omp_set_num_threads(1)
            return DeterminismTests().fit()
        }
        #expect(afterWorker.losses == alone.losses, "\(afterWorker.losses) vs \(alone.losses)")
        #expect(afterWorker.weights == alone.weights, "weights differ after a worker's team size")
        // ... and while another thread keeps the cores busy with parallel work, so that the
        // fit's parallel regions run serially on its own thread.
        let stop = ManagedAtomicFlag()
        let busy = Thread {
            let a = Tensor(shape: [256, 256], data: (0..<65536).map { Float($0 % 13) * 0.01 })
            while !stop.isSet { Parallel.forEach(4) { _ in _ = GEMM.matmul(a, a) } }
        }
        busy.start()
        let beside = onNewThread { DeterminismTests().fit() }
        stop.set()
        #expect(beside.losses == alone.losses, "\(beside.losses) vs \(alone.losses)")
        #expect(beside.weights == alone.weights, "weights differ with other parallel work beside the fit")
    }

    /// An embedding does not depend on how many slices were encoded with it: one slice alone
    /// (a region of one, which once ran its products on all cores) or among others (one per
    /// core), or beside other parallel work. The embedding cache and the segmenter rely on it.
    @Test func anEmbeddingIsTheSameAloneOrAmongOthers() throws {
        let enc = try FrozenEncoder(source: "tiny")
        let side = enc.config.imageSize
        var r = Initializer(state: 8)
        let slice = Tensor(shape: [3, side, side], data: (0..<(3 * side * side)).map { _ in r.uniform() })
        let alone = Parallel.map(1) { _ in enc.embed(slice) }[0]
        let amongOthers = Parallel.map(3) { _ in enc.embed(slice) }
        #expect(amongOthers.allSatisfy { $0 == alone })
        let stop = ManagedAtomicFlag()
        let busy = Thread {
            let a = Tensor(shape: [256, 256], data: (0..<65536).map { Float($0 % 13) * 0.01 })
            while !stop.isSet { Parallel.forEach(4) { _ in _ = GEMM.matmul(a, a) } }
        }
        busy.start()
        let beside = Parallel.map(2) { _ in enc.embed(slice) }
        stop.set()
        #expect(beside.allSatisfy { $0 == alone })
    }
}

struct FitResult: Sendable {
    var losses: [Float]
    var weights: [[Float]]
}

final class ResultBox: @unchecked Sendable {
    var value: FitResult?
}

/// A flag one thread sets and another polls.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
