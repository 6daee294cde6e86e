# bash completion for vma (installed as share/bash-completion/completions/vma;
# vma-standalone uses it too). vma itself answers (vma --complete, lua/vma/
# complete.lua), so that your own commands, their options and the values of
# --compress, --target, -O, --disk (the disks of the archive already on the
# line) complete too. A vma that does not answer (Proxmox's, under the same
# name) gets file names.
_vma() {
    local cur words cword out
    local -a reply
    if declare -F _init_completion >/dev/null; then
        # bash-completion: --opt=value and rbd:/dir: stay one word
        # shellcheck disable=SC2034 # prev and split are set by _init_completion
        local prev split
        _init_completion -s -n : || return
        [[ $split == true ]] && cur=${words[cword]}
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi
    local prog=${words[0]/#\~/$HOME}
    out=$("$prog" --complete "$cword" "${words[@]}" 2>/dev/null) || out=
    if [[ ${out%%$'\n'*} != "vma-complete 1" ]]; then
        mapfile -t COMPREPLY < <(compgen -f -- "${COMP_WORDS[COMP_CWORD]}")
        return
    fi
    [[ $out == *$'\n'* ]] && mapfile -t reply <<<"${out#*$'\n'}"
    local value=${COMP_WORDS[COMP_CWORD]}
    [[ $cur == --*=* ]] && value=${cur#*=}
    COMPREPLY=()
    local w
    for w in "${reply[@]}"; do
        case $w in
        '') ;;
        @files) mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$value") ;;
        @dirs) mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -d -- "$value") ;;
        *) COMPREPLY+=("$w") ;;
        esac
    done
    # a word that goes on (dir:, a folder/, a list,) takes no space after it
    if [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *[:/,] ]]; then
        compopt -o nospace 2>/dev/null
    fi
    # the shell replaces only what follows the last ':' of the word
    if [[ $cur == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local colon=${cur%"${cur##*:}"}
        local i
        for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$colon"}; done
    fi
}
complete -o filenames -F _vma vma vma-standalone
