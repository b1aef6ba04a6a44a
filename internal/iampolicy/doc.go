// Package iampolicy writes the least-privilege IAM identity policy for
// the AWS calls ebsimager makes: preserving an instance or volume
// (snapshot, tag, wait, lock), sharing the snapshots, copying them under
// another KMS key, and acquiring them through the EBS direct APIs. Every
// statement grants only the actions one of those steps calls, on the ARN
// types the Service Authorization Reference lists for them, and "*" only
// for actions that support no resource-level permission. It makes no AWS
// call and imports no AWS SDK: the policy is plain data, rendered as the
// JSON IAM accepts, with a small evaluator (Allows) that tests use to
// check a recorded list of calls against it.
package iampolicy
