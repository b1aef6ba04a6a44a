package codec

// SetKeyFileWorkFactor lowers the scrypt work factor of GenerateKeyFile so
// that tests do not spend a second and 256 MiB per key file.
func SetKeyFileWorkFactor(logN int) (restore func()) {
	old := keyFileWorkFactor
	keyFileWorkFactor = logN
	return func() { keyFileWorkFactor = old }
}
