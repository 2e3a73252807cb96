"""The Excel workbook: formats and sheet specs, the hand-laid sheets, the charts."""
