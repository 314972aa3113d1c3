// Sending files to a DICOM peer (C-STORE SCU) with dcmnet's DcmSCU.
#include "internal.h"

#include "dcmtk/dcmnet/scu.h"
#include "dcmtk/dcmtls/tlsscu.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

using namespace asn_dicom;

extern "C" int asn_dicom_store(const asn_dicom_store_request *r, const char *const *files, int32_t count,
                               uint16_t *statuses, char *err, size_t errlen) {
    asn_dicom_init();
    if (r == nullptr || (count > 0 && (files == nullptr || statuses == nullptr)) || count < 0) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "null argument");
    }
    if (empty(r->host) || r->port <= 0 || r->port > 65535 || empty(r->called_ae) || empty(r->calling_ae)) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "the destination needs a host, a port 1...65535 and both AE titles");
    }
    for (int i = 0; i < count; ++i) statuses[i] = 0xFFFF;
    if (count == 0) return ASN_DICOM_OK;

    // What each file is, to offer a context per SOP Class with its transfer syntax.
    std::vector<std::string> classes(count);
    std::map<std::string, std::vector<std::string>> syntaxes;
    for (int i = 0; i < count; ++i) {
        DcmFileFormat ff;
        char ignored[256];
        if (loadFile(ff, files[i], true, ignored, sizeof ignored) != ASN_DICOM_OK) continue;
        OFString cls, ts;
        ff.getMetaInfo()->findAndGetOFString(DCM_MediaStorageSOPClassUID, cls);
        ff.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, ts);
        if (cls.empty()) continue;
        classes[i] = cls.c_str();
        std::vector<std::string> &list = syntaxes[classes[i]];
        if (!ts.empty() && std::find(list.begin(), list.end(), std::string(ts.c_str())) == list.end()) list.push_back(ts.c_str());
    }
    if (r->tls && empty(r->tls_ca_file)) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "TLS needs a file of trusted certificates");
    if (r->tls && empty(r->tls_certificate) != empty(r->tls_private_key)) {
        return fail(err, errlen, ASN_DICOM_ERR_INVALID, "a TLS client certificate needs its private key, and the other way round");
    }
    std::unique_ptr<DcmSCU> owner;
    if (r->tls) {
        auto tls = std::make_unique<DcmTLSSCU>();
        tls->addTrustedCertFile(r->tls_ca_file);
        tls->setPeerCertVerification(DCV_requireCertificate);
        if (!empty(r->tls_certificate)) tls->enableAuthentication(r->tls_private_key, r->tls_certificate, "");
        owner = std::move(tls);
    } else {
        owner = std::make_unique<DcmSCU>();
    }
    DcmSCU &scu = *owner;
    scu.setAETitle(r->calling_ae);
    scu.setPeerHostName(r->host);
    scu.setPeerPort(Uint16(r->port));
    scu.setPeerAETitle(r->called_ae);
    const Uint32 timeout = Uint32(r->timeout_s > 0 ? r->timeout_s : 30);
    scu.setConnectionTimeout(Sint32(timeout));
    scu.setACSETimeout(timeout);
    scu.setDIMSETimeout(timeout);
    for (auto &entry : syntaxes) {
        OFList<OFString> ts;
        for (const std::string &t : entry.second) ts.push_back(t.c_str());
        for (const char *t : {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax}) {
            if (std::find(entry.second.begin(), entry.second.end(), std::string(t)) == entry.second.end()) ts.push_back(t);
        }
        scu.addPresentationContext(entry.first.c_str(), ts);
    }
    if (syntaxes.empty()) return fail(err, errlen, ASN_DICOM_ERR_INVALID, "none of the files is a readable DICOM file");
    OFCondition c = scu.initNetwork();
    if (c.bad()) return fail(err, errlen, ASN_DICOM_ERR_IO, std::string("network: ") + c.text());
    c = scu.negotiateAssociation();
    if (c.bad()) {
        return fail(err, errlen, ASN_DICOM_ERR_IO, std::string("no association with ") + (r->tls ? "tls:" : "") + r->called_ae + "@" +
                                                       r->host + ":" + std::to_string(r->port) + ": " + c.text());
    }
    std::string firstProblem;
    for (int i = 0; i < count; ++i) {
        if (classes[i].empty()) continue;
        T_ASC_PresentationContextID pc = scu.findAnyPresentationContextID(classes[i].c_str(), "");
        if (pc == 0) {
            if (firstProblem.empty()) firstProblem = std::string("the peer accepted no context for ") + files[i];
            continue;
        }
        Uint16 status = 0xFFFF;
        c = scu.sendSTORERequest(pc, files[i], nullptr, status);
        if (c.bad()) {
            if (firstProblem.empty()) firstProblem = std::string("sending ") + files[i] + ": " + c.text();
            if (!scu.isConnected()) break;
            continue;
        }
        statuses[i] = status;
    }
    if (scu.isConnected()) scu.releaseAssociation();
    setError(err, errlen, firstProblem);
    return ASN_DICOM_OK;
}
