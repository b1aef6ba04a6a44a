// Package awsctx owns the two context calls of the chain-of-custody
// record: STS GetCallerIdentity (who acquired) and EC2 DescribeSnapshots
// (the snapshot's volume, owner, start time, encryption, KMS key,
// description and tags). Each attempt has its own short timeout, and a
// call gets a couple of retries under the EBS requests' policy
// (ebs.Policy, applied by the ebs.Wrap decorator); its answer, denial or
// error is recorded as text in the report's AWS section instead of
// failing the acquisition. Its client, retry policy and recorder
// (EC2, Retried) serve the pre-flight's calls too, and StartDescribed
// records the pre-flight's DescribeSnapshots instead of asking again.
package awsctx
