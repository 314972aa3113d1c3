import ArgumentParser
import CardiacImaging
import Foundation
import Tensor

struct GEMMBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "GFLOPS of each GEMM backend on the encoder's shapes, in one sitting.")

    @Option(help: "Repetitions per shape and backend (best is reported).") var repeats = 5

    func run() throws {
        // (M, N, K, transB): vit_b qkv, proj, MLP in and out, and one windowed-attention head.
        let shapes: [(String, Int, Int, Int, Bool)] = [
            ("qkv 4900x2304x768", 4900, 2304, 768, true), ("proj 4096x768x768", 4096, 768, 768, true),
            ("mlp1 4096x3072x768", 4096, 3072, 768, true), ("mlp2 4096x768x3072", 4096, 768, 3072, true),
            ("scores 196x196x64", 196, 196, 64, true), ("attn@v 196x64x196", 196, 64, 196, false),
            ("g-scores 64x4096x64", 64, 4096, 64, true), ("g-attn@v 64x64x4096", 64, 64, 4096, false),
        ]
        print("threads \(Parallel.threads); OpenBLAS: \(BuildInfo.blasConfig)")
        for (name, m, n, k, tb) in shapes {
            var line = name.padding(toLength: 22, withPad: " ", startingAt: 0)
            for backend in GEMMBackend.allCases {
                GEMM.backend = backend
                let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
                var c = [Float](repeating: 0, count: m * n)
                let small = m * n * k < 20_000_000
                let inner = small ? 200 : 1
                var best = Double.infinity
                for _ in 0..<repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    a.withUnsafeBufferPointer { ap in
                        b.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                for _ in 0..<inner {
                                    GEMM.sgemm(false, tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!,
                                               ldb: tb ? k : n, c: cp.baseAddress!, ldc: n)
                                }
                            }
                        }
                    }
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(inner))
                }
                line += String(format: "  %@ %7.1f GFLOPS", backend.rawValue, 2 * Double(m * n * k) / best / 1e9)
            }
            print(line)
        }
        GEMM.backend = GEMM.defaultBackend
    }
}
