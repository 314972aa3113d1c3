import CardiacImaging

enum BuildInfoShim {
    static var openBLASCore: String { BuildInfo.blasConfig }
}
