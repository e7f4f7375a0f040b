/**
 * A problem with what the operator asked for (a broken folder, a bad manifest, a bad catalog
 * file). `userFacing` tells the CLI to print the message alone, without a stack: the message
 * is the whole story and names the file at fault.
 */
export class OriginInputError extends Error {
  readonly userFacing = true;
  constructor(message: string) {
    super(message);
    this.name = 'OriginInputError';
  }
}

/** A manifest that cannot be read or that references something we refuse to serve. */
export class ManifestError extends OriginInputError {
  constructor(message: string) {
    super(message);
    this.name = 'ManifestError';
  }
}
