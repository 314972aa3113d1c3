// swift-tools-version:6.0
import PackageDescription

// Layers (lower never imports higher): the C wrappers; Tensor -> NN -> SegmentAnything, and
// CardiacImaging; AutoSAM on both; QC; Service; Review (the web page); then the executables (autosam, autosam-fuzz
// through Fuzzing). Every target declares each module it imports.
// docs/ARCHITECTURE.md says what each target owns.
let package = Package(
    name: "autosam",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "autosam", targets: ["autosam"]),
        .library(name: "CardiacImaging", targets: ["CardiacImaging"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Narrow C API over nifti2_io (Debian: libniftiio-dev, libnifti2-dev). nifti2_io.h
        // includes <znzlib.h>, so the NIfTI include folder must be on the C search path.
        .target(
            name: "CNIfTI",
            path: "Sources/CNIfTI",
            cSettings: [
                .unsafeFlags(["-I/usr/include/nifti"]),
                .define("HAVE_ZLIB"),
            ],
            linkerSettings: [
                .linkedLibrary("nifti2"), .linkedLibrary("znz"),
                .linkedLibrary("z"), .linkedLibrary("m"),
            ]
        ),
        // OpenBLAS's CBLAS interface (Debian: libopenblas-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        // Element-wise hot loops in C, compiled per instruction set (AVX-512, AVX2, baseline)
        // and dispatched at load time.
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno", "-fassociative-math", "-fno-signed-zeros", "-fno-trapping-math"])]
        ),
        // bf16 linear layers through oneDNN's matmul primitive (an opt-in precision mode).
        .target(name: "CBF16", dependencies: ["CDNNL", "CKernels"], path: "Sources/CBF16", cSettings: [.unsafeFlags(["-O3"])]),
        // oneDNN's sgemm (Debian: libdnnl-dev), chosen by measurement as the default GEMM.
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        // Narrow extern "C" API (asn_dicom.h) over DCMTK 3.6.7 (Debian: libdcmtk-dev); C++17
        // inside, plain C structs outside. See docs/DICOM.md.
        .target(
            name: "CDicom",
            path: "Sources/CDicom",
            cxxSettings: [.define("HAVE_CONFIG_H"), .unsafeFlags(["-std=c++17"])],
            linkerSettings: [
                .linkedLibrary("dcmtls"), .linkedLibrary("dcmnet"), .linkedLibrary("cmr"), .linkedLibrary("dcmsr"), .linkedLibrary("dcmseg"), .linkedLibrary("dcmfg"), .linkedLibrary("dcmiod"),
                .linkedLibrary("dcmjpeg"), .linkedLibrary("dcmjpls"), .linkedLibrary("dcmimage"),
                .linkedLibrary("dcmimgle"), .linkedLibrary("dcmdata"), .linkedLibrary("oflog"),
                .linkedLibrary("ofstd"), .linkedLibrary("stdc++"),
            ]
        ),
        .target(
            name: "CardiacImaging",
            dependencies: ["CNIfTI", "CDicom"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        // Dense Float32 tensors, GEMM through the BLAS, the kernels the models need.
        .target(
            name: "Tensor",
            dependencies: ["CBLAS", "CDNNL", "CKernels", "CBF16"],
            // Swift 5 mode: the kernels share raw buffers across threads by design (disjoint
            // slices per task), which Swift 6's strict Sendable checking cannot express.
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release)), .swiftLanguageMode(.v5)]
        ),
        // Checkpoints (PyTorch .pth through a restricted unpickler, safetensors) and strict loading.
        .target(
            name: "NN",
            dependencies: [
                "Tensor",
                "CKernels",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The Segment Anything model: image encoder, prompt encoder, mask decoder.
        .target(
            name: "SegmentAnything",
            dependencies: ["Tensor", "NN", "CKernels", "CBF16"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release)), .swiftLanguageMode(.v5)]
        ),
        // The method: preprocessing plans, the embedding cache, the heads, training and
        // evaluation on top of the frozen encoder.
        .target(
            name: "AutoSAM",
            dependencies: [
                "CardiacImaging", "SegmentAnything", "NN", "Tensor",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [.copy("DefaultModel")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release)), .swiftLanguageMode(.v5)]
        ),
        // cairo (Debian: libcairo2-dev) draws the QC picture and writes it as PNG.
        .systemLibrary(name: "CCairo", path: "Sources/CCairo"),
        // The QC picture a clinician looks at: slices with coloured contours and key numbers.
        .target(name: "QC", dependencies: ["CardiacImaging", "CCairo"]),
        // The clinical service: configuration, the inbox daemon, its journal (SQLite through
        // GRDB, or PostgreSQL through PostgresNIO when several workers share one queue),
        // outputs, the refit loop and systemd integration.
        .target(
            name: "Service",
            dependencies: [
                "CardiacImaging", "AutoSAM", "QC", "Tensor",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // The review page (`autosam web`): Hummingbird over the journal and outbox, read-only,
        // behind a login (bcrypt-hashed passwords, expiring sessions, CSRF tokens).
        .target(
            name: "Review",
            dependencies: [
                "Service", "AutoSAM", "CardiacImaging", "QC",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
            ]
        ),
        .executableTarget(
            name: "autosam",
            dependencies: [
                "CardiacImaging", "SegmentAnything", "AutoSAM", "QC", "Service", "Review", "NN", "Tensor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzzing harnesses for every parser of untrusted input (docs/RELIABILITY.md): the tests
        // replay the committed corpora through them; `autosam-fuzz` runs one under libFuzzer when
        // built with -sanitize=fuzzer (make fuzz-build), and replays files otherwise.
        .target(
            name: "Fuzzing",
            dependencies: ["CardiacImaging", "NN", "Tensor", "AutoSAM", "Service", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(name: "autosam-fuzz", dependencies: ["Fuzzing"], swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(name: "FuzzingTests", dependencies: ["Fuzzing", "NN", "AutoSAM", "Service", "CardiacImaging"]),
        .testTarget(name: "NNTests", dependencies: ["NN", "Tensor", "CKernels"]),
        .testTarget(name: "QCTests", dependencies: ["QC", "CardiacImaging"]),
        .testTarget(name: "ReviewTests", dependencies: ["Review", "Service", "CardiacImaging"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "AutoSAM", "CardiacImaging", "QC"], exclude: ["Native", "Python"]),
        .testTarget(
            name: "AutoSAMTests", dependencies: ["AutoSAM", "NN", "Tensor", "CardiacImaging", "SegmentAnything", "CDNNL"],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "SegmentAnythingTests",
            dependencies: ["SegmentAnything", "NN", "Tensor", "CKernels", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "CardiacImagingTests",
            dependencies: ["CardiacImaging"],
            resources: [.copy("Python")]
        ),
    ]
)
