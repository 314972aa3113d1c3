// swift-tools-version:6.0
import PackageDescription

// Layers (lower never imports higher): C wrappers -> CardiacImaging -> autosam (CLI).
// See docs/ARCHITECTURE.md for the full plan and what each target owns.
let package = Package(
    name: "autosam",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "autosam", targets: ["autosam"]),
        .library(name: "CardiacImaging", targets: ["CardiacImaging"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .target(
            name: "CardiacImaging",
            dependencies: ["CNIfTI", "CBLAS"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "autosam",
            dependencies: [
                "CardiacImaging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CardiacImagingTests",
            dependencies: ["CardiacImaging"],
            resources: [.copy("Python")]
        ),
    ]
)
