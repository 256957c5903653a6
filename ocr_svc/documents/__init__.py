"""Documents in: an upload (an image, a multi-page TIFF or a PDF) opened as a sequence of
pages, one page in memory at a time (`open_document`), each page turned upright
(`upright`). PDFs are read by PDFium in a helper process of their own (`pdf`,
`pdf_helper`); a page with a text layer is returned as its text, not as pixels.

Kept light on purpose: `pdf_helper.py` runs as a script and imports nothing from here.
"""
