package report

// Parse reads a record from its JSON, as Load reads report.json from a
// directory: for a record kept elsewhere (an object in S3).
func Parse(data []byte) (*Report, error) { return parse(data) }
