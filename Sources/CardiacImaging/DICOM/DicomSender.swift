import CDicom
import Foundation

/// A DICOM peer to send results to (a PACS): its AE title, host and port, written
/// `AE@host:port` in the configuration, `tls:AE@host:port` over TLS.
public struct DicomDestination: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var aeTitle: String
    public var host: String
    public var port: Int
    public var tls: Bool

    public init(aeTitle: String, host: String, port: Int, tls: Bool = false) {
        self.aeTitle = aeTitle
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses `[tls:]AE@host:port` (AE title 1...16 characters of printable ASCII without a
    /// backslash, port 1...65535); nil when it is not of that form.
    public init?(_ written: String) {
        let tls = written.hasPrefix("tls:")
        let text = tls ? String(written.dropFirst(4)) : written
        guard let at = text.firstIndex(of: "@"), let colon = text.lastIndex(of: ":"), at < colon else { return nil }
        let ae = String(text[..<at]), host = String(text[text.index(after: at)..<colon])
        guard (1...16).contains(ae.count), ae.allSatisfy({ $0.isASCII && $0 != "\\" && ($0 == " " || $0.isPunctuation || $0.isLetter || $0.isNumber || $0.isSymbol) }),
              !ae.trimmingCharacters(in: .whitespaces).isEmpty, !host.isEmpty, !host.contains(where: \.isWhitespace),
              let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        self.init(aeTitle: ae, host: host, port: port, tls: tls)
    }

    public var description: String { (tls ? "tls:" : "") + "\(aeTitle)@\(host):\(port)" }
}

/// The files that authenticate a TLS association: the certificates we trust (the peer's
/// must chain to one), and optionally our own certificate and its unencrypted private key.
public struct DicomTLSFiles: Sendable, Equatable {
    public var trustedCertificates: String
    public var certificate: String?
    public var privateKey: String?

    public init(trustedCertificates: String, certificate: String? = nil, privateKey: String? = nil) {
        self.trustedCertificates = trustedCertificates
        self.certificate = certificate
        self.privateKey = privateKey
    }
}

/// Sends files to a DICOM peer by C-STORE (DCMTK's DcmSCU), all over one association.
public enum DicomSender {
    /// The peer's response status per file (0 success, 0xB000...0xBFFF warning; 0xFFFF not
    /// sent). Throws a `DicomError` naming the destination when the peer cannot be reached or
    /// refuses the association.
    public static func store(
        _ files: [String], to destination: DicomDestination, callingAE: String, timeoutSeconds: Int = 30, tls: DicomTLSFiles? = nil
    ) throws -> [UInt16] {
        if destination.tls && tls == nil {
            throw DicomError.invalidArgument("\(destination) is a TLS destination: its trusted certificates are needed")
        }
        let strings = CStrings()
        defer { strings.free() }
        let paths = CBuffer(files.map { Optional(strings.make($0)) })
        let statuses = CBuffer([UInt16](repeating: 0xFFFF, count: files.count))
        defer { paths.free(); statuses.free() }
        var r = asn_dicom_store_request()
        r.host = strings.make(destination.host)
        r.port = Int32(destination.port)
        r.calling_ae = strings.make(callingAE)
        r.called_ae = strings.make(destination.aeTitle)
        r.timeout_s = Int32(timeoutSeconds)
        if destination.tls, let tls {
            r.tls = 1
            r.tls_ca_file = strings.make(tls.trustedCertificates)
            r.tls_certificate = tls.certificate.map { UnsafePointer(strings.make($0)) } ?? nil
            r.tls_private_key = tls.privateKey.map { UnsafePointer(strings.make($0)) } ?? nil
        }
        var err = DicomFile.errorBuffer()
        let rc = asn_dicom_store(&r, UnsafePointer(paths.pointer), Int32(files.count), statuses.pointer, &err, err.count)
        guard rc == 0 else { throw DicomFile.error(rc, path: destination.description, message: err) }
        return (0..<files.count).map { statuses.pointer[$0] }
    }

    /// Whether a C-STORE response status means the peer has the object (success or warning).
    public static func stored(_ status: UInt16) -> Bool { status == 0 || (0xB000...0xBFFF).contains(status) }
}
