// The QC picture: see QCPicture (added with the QC issue work).
