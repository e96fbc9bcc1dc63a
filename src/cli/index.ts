import { Command, CommanderError, InvalidArgumentError } from "commander";
import { WardenError } from "../errors/index.js";
import { SERVER_VERSION } from "../server/index.js";
import { auditCommand } from "./audit-fairness.js";
import { exportTrainingCommand } from "./export-training.js";
import { fairnessCommand } from "./fairness-mitigate.js";
import { ledgerExportCommand } from "./ledger-export.js";
import { ledgerProofCommands } from "./ledger-proofs.js";
import { ledgerPurgeCommand } from "./ledger-purge.js";
import { ledgerVerifyCommand } from "./ledger-verify.js";
import { modelsCommand } from "./models.js";
import { monitorCommand } from "./monitor-report.js";
import { predictCommand } from "./predict.js";
import { profileCommand } from "./profile.js";
import { serveCommand } from "./serve.js";

/** Exit codes (closed list): 0 ok, 1 the command failed, 2 it was used wrongly. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Where a command writes; the real process streams by default, buffers in tests. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** An argument that parsed but makes no sense (out of range, unknown format). Exit code 2. */
export class UsageError extends Error {}

/** Parse an integer flag within bounds, for commander. */
export function intOption(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(
        `${name} must be an integer from ${min} to ${max}; got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

/** Parse one of a closed list of choices. */
export function choiceOption<T extends string>(name: string, choices: readonly T[]) {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(
        `${name} must be one of ${choices.join(", ")}; got ${JSON.stringify(value)}`,
      );
    }
    return value as T;
  };
}

/**
 * Run the `warden` CLI with `argv` (without node and script) and return its exit code.
 * Long-running commands (serve) resolve when the server stops.
 */
export async function main(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  let result: Promise<number> = Promise.resolve(EXIT.ok);
  const program = new Command("warden")
    .description("Warden: a governed inference server")
    .version(SERVER_VERSION, "-V, --version")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .exitOverride();
  const run = (action: () => Promise<number>) => {
    result = action();
  };
  serveCommand(program, io, run);
  predictCommand(program, io, run);
  ledgerVerifyCommand(program, io, run);
  ledgerProofCommands(program, io, run);
  ledgerExportCommand(program, io, run);
  ledgerPurgeCommand(program, io, run);
  exportTrainingCommand(program, io, run);
  modelsCommand(program, io, run);
  profileCommand(program, io, run);
  monitorCommand(program, io, run);
  auditCommand(program, io, run);
  fairnessCommand(program, io, run);
  for (const command of program.commands) {
    command.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
    for (const sub of command.commands)
      sub.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  }
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT.usage;
    }
    await program.parseAsync([...argv], { from: "user" });
    return await result;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help"
      ) {
        return EXIT.ok;
      }
      return EXIT.usage;
    }
    if (error instanceof UsageError) {
      io.stderr(`warden: ${error.message}\n(run with --help for usage)\n`);
      return EXIT.usage;
    }
    if (error instanceof WardenError) {
      io.stderr(`warden: ${error.message}\n`);
      // Details add what the message does not already say (loaders put the list in the message itself).
      const first = error.details[0];
      if (
        first !== undefined &&
        !error.message.includes(first.expected) &&
        !error.message.includes(first.found)
      ) {
        for (const d of error.details)
          io.stderr(`  ${d.field}: expected ${d.expected}, found ${d.found}${d.fix ? ` — ${d.fix}` : ""}\n`);
      }
      return EXIT.failure;
    }
    io.stderr(`warden: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT.failure;
  }
}
